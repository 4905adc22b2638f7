/**
 * The one-line summary of an alert (`AlertNotice.summary`): what happened,
 * with the figures that matter, for people. Built only from the facts passed
 * in — `now` included — so the same facts always give the same line. Times
 * are written in UTC (`2026-11-25 04:00 UTC`), durations in whole units
 * (`1 h 12 min`), and text that comes from scripts or reports is folded onto
 * one line and shortened.
 */

/** The facts each alert type is summarised from. Times are epoch ms. */
export type AlertFacts =
  | { type: 'script_failed'; createdAt: number; error: string | null }
  | { type: 'overdue'; lastSuccessAt: number | null; dueAt: number }
  | { type: 'stuck'; startedAt: number; deadlineAt: number; now: number }
  | { type: 'illegal'; reason: string | null }
  | { type: 'transfer_failed'; filename: string; attempts: number; error: string | null }
  | { type: 'integrity'; filename: string; stage: 'pull' | 'scrub' | 'restore'; node: string | null }
  | { type: 'node_paused'; reason: string }
  | { type: 'node_offline'; lastHeartbeatAt: number | null; enrolledAt: number; now: number }
  | { type: 'queue_backlog'; cluster: string; oldestQueuedAt: number; now: number };

/** Longest text taken from a script or a report into a summary, characters. */
export const MAX_QUOTED_CHARS = 300;

export function alertSummary(facts: AlertFacts): string {
  switch (facts.type) {
    case 'script_failed': {
      const error = quoted(facts.error);
      const what = `backup of ${formatUtc(facts.createdAt)} failed`;
      return error === null ? `${what} (no error message)` : `${what}: ${error}`;
    }
    case 'overdue': {
      const due = `(due ${formatUtc(facts.dueAt)})`;
      return facts.lastSuccessAt === null
        ? `no successful backup yet ${due}`
        : `no successful backup since ${formatUtc(facts.lastSuccessAt)} ${due}`;
    }
    case 'stuck':
      return (
        `run started ${formatUtc(facts.startedAt)} has not finished after ` +
        `${formatDuration(facts.now - facts.startedAt)} (deadline ${formatUtc(facts.deadlineAt)})`
      );
    case 'illegal': {
      const reason = quoted(facts.reason);
      return reason === null ? 'report not accepted by the registry' : `report not accepted: ${reason}`;
    }
    case 'transfer_failed': {
      const error = quoted(facts.error);
      const what =
        `transfer of ${quoted(facts.filename) ?? '(unnamed file)'} gave up after ` +
        `${facts.attempts} attempt${facts.attempts === 1 ? '' : 's'}`;
      return error === null ? what : `${what}: ${error}`;
    }
    case 'integrity': {
      const where = facts.node === null ? '' : ` on node ${facts.node}`;
      return `checksum mismatch on ${facts.stage} of ${quoted(facts.filename) ?? '(unnamed file)'}${where}`;
    }
    case 'node_paused':
      return `paused: ${facts.reason}`;
    case 'node_offline':
      return facts.lastHeartbeatAt === null
        ? `no heartbeat since it enrolled ${formatDuration(facts.now - facts.enrolledAt)} ago`
        : `no heartbeat for ${formatDuration(facts.now - facts.lastHeartbeatAt)}`;
    case 'queue_backlog':
      return `oldest queued job waited ${formatDuration(facts.now - facts.oldestQueuedAt)} in cluster ${facts.cluster}`;
    default:
      return unreachable(facts);
  }
}

/** `2026-11-25 04:00 UTC`; seconds are shown only when they are not zero (`04:00:37`). */
export function formatUtc(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-25T04:00:37.123Z; throws RangeError for an invalid time
  const seconds = iso.slice(17, 19);
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}${seconds === '00' ? '' : `:${seconds}`} UTC`;
}

/**
 * A duration in its two largest whole units, rounded down: `45 s`, `4 min`,
 * `1 h 12 min`, `2 d 3 h`. A zero second unit is left out (`2 h`); a negative
 * duration (clock skew) is `0 s`.
 */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return joinUnits(hours, 'h', minutes % 60, 'min');
  return joinUnits(Math.floor(hours / 24), 'd', hours % 24, 'h');
}

function joinUnits(major: number, majorUnit: string, minor: number, minorUnit: string): string {
  return minor === 0 ? `${major} ${majorUnit}` : `${major} ${majorUnit} ${minor} ${minorUnit}`;
}

/** Text from outside folded onto one line and cut to `MAX_QUOTED_CHARS`; null when nothing is left. */
function quoted(text: string | null): string | null {
  if (text === null) return null;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we fold away
  const line = text.replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim();
  if (line === '') return null;
  const chars = Array.from(line);
  return chars.length <= MAX_QUOTED_CHARS ? line : `${chars.slice(0, MAX_QUOTED_CHARS - 1).join('')}…`;
}

function unreachable(facts: never): never {
  throw new Error(`no summary for alert facts ${JSON.stringify(facts)}`);
}
