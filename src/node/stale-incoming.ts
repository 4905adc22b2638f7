/**
 * Which entries of a node's `.incoming` directory are left over from
 * transfers that will not come back to this node: a job that ended dead, or
 * was finished by another node after this one lost its lease, leaves its
 * `<job>.part`, `<job>.ubmeta.tmp` or rsync work directory `<job>.rsync`
 * behind. Such an entry is stale when no transfer of that job runs here and
 * nothing touched it for `maxIdleMs` (a retry on this node comes back within
 * minutes and resumes the part; see docs/operations.md). Names the node does
 * not write itself are never chosen. Pure: the caller lists and deletes.
 */

/** One entry of `.incoming`, as `readdir` + `lstat` see it. */
export interface IncomingEntry {
  name: string;
  kind: 'file' | 'directory' | 'other';
  mtimeMs: number;
  bytes: number;
}

/** What `.incoming` holds, by kind of entry the node writes. */
const INCOMING_NAMES: readonly { pattern: RegExp; kind: IncomingEntry['kind'] }[] = [
  { pattern: /^([1-9][0-9]{0,15})\.part$/, kind: 'file' },
  { pattern: /^([1-9][0-9]{0,15})\.ubmeta\.tmp$/, kind: 'file' },
  { pattern: /^([1-9][0-9]{0,15})\.rsync$/, kind: 'directory' },
];

/** The job an entry belongs to, or null for a name (or kind) the node does not write. */
export function incomingJobId(entry: Pick<IncomingEntry, 'name' | 'kind'>): number | null {
  for (const { pattern, kind } of INCOMING_NAMES) {
    const match = pattern.exec(entry.name);
    if (match && entry.kind === kind) return Number(match[1]);
  }
  return null;
}

export interface StaleIncoming {
  /** Entries to delete. */
  stale: IncomingEntry[];
  /** Entries with names the node does not write: left alone, worth a warning. */
  unknown: IncomingEntry[];
}

export function staleIncoming(
  entries: readonly IncomingEntry[],
  busyJobIds: ReadonlySet<number>,
  nowMs: number,
  maxIdleMs: number,
): StaleIncoming {
  const stale: IncomingEntry[] = [];
  const unknown: IncomingEntry[] = [];
  for (const entry of entries) {
    const jobId = incomingJobId(entry);
    if (jobId === null) unknown.push(entry);
    else if (!busyJobIds.has(jobId) && nowMs - entry.mtimeMs >= maxIdleMs) stale.push(entry);
  }
  return { stale, unknown };
}
