import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
import { MAX_ERROR_CHARS, MAX_LOG_CHARS } from '../shared/report.js';

/**
 * The backup-script contract (DESIGN §4), as pure functions: given how the
 * script ended and what its logs say, decide whether the run produced a backup,
 * which file, and of which kind. The runner does the I/O (spawn, wait, stat,
 * read) and hands the results here; nothing in this file touches the disk or
 * the clock.
 *
 * Precedence, first match wins:
 *   timeout → killed → exit code ≠ 0 → back_log missing → stale → empty →
 *   garbled → `wrong` → `ok` without a name → bad name →
 *   (with last_all_log) missing → `wrong` → garbled/no name → bad base name →
 *   full or incremental.
 */

/** A log file read after the run; `content` is decoded as UTF-8. */
export interface LogSnapshot {
  content: string;
  mtimeMs: number;
}

export interface ContractInput {
  /** null when the script was killed by a signal. */
  exitCode: number | null;
  /** e.g. 'SIGKILL'. */
  signal: string | null;
  /** The runner killed the script's process group on timeout. */
  timedOut: boolean;
  timeoutSeconds: number;
  /** When the script was started (epoch ms). */
  runStartedAtMs: number;
  /** null = the file is missing. */
  backLog: LogSnapshot | null;
  /** The instance has `last_all_log`. */
  lastAllLogConfigured: boolean;
  /** null = missing; only meaningful when configured. */
  lastAllLog: LogSnapshot | null;
}

export type ContractErrorCode =
  | 'timeout'
  | 'killed'
  | 'exit_nonzero'
  | 'back_log_missing'
  | 'back_log_stale'
  | 'back_log_empty'
  | 'back_log_garbled'
  | 'script_reported_wrong'
  | 'ok_without_name'
  | 'bad_file_name'
  | 'last_full_failed'
  | 'last_all_log_missing'
  | 'last_all_log_garbled';

export type ContractKind = 'single' | 'full' | 'incremental';

export type ContractOutcome =
  | { status: 'ok'; kind: ContractKind; filename: string; baseFilename: string | null; log: string }
  | { status: 'failed'; code: ContractErrorCode; error: string; log: string };

/**
 * How much older than the run's start a back_log may look and still count as
 * written by this run, in milliseconds.
 *
 * The start time comes from the agent's clock at millisecond precision, but
 * the kernel stamps mtimes from its coarse clock (it lags real time by up to a
 * tick, 1–10 ms), and some filesystems keep only whole seconds (ext4 with
 * 128-byte inodes, ext3, HFS+) or even two seconds (FAT), truncating. A script
 * that writes back_log within a second of starting can therefore carry an mtime
 * up to ~2 s *before* the recorded start. Calling such a run stale would drop a
 * good backup, which is the worse error; the opposite error needs the previous
 * run to have written back_log less than 2 s before this run started *and* this
 * run to exit 0 without writing it. So: fresh iff mtimeMs ≥ start − 2000.
 */
export const STALE_TOLERANCE_MS = 2000;

/** Longest first line quoted in a "garbled" message, in characters. */
export const MAX_QUOTED_LINE_CHARS = 80;
/** Longest script error text or file name quoted in a message, in characters. */
export const MAX_QUOTED_TEXT_CHARS = 1024;

const BOM = '\uFEFF';

/** Removes one leading UTF-8 byte order mark. */
export function stripBom(content: string): string {
  return content.startsWith(BOM) ? content.slice(BOM.length) : content;
}

/**
 * The lines of a log: strips a BOM, splits on `\n`, `\r\n` or `\r`, trims
 * trailing spaces and tabs of each line, and drops trailing empty lines.
 */
export function parseLogLines(content: string): string[] {
  const lines = stripBom(content)
    .split(/\r\n|\r|\n/)
    .map((line) => line.replace(/[ \t]+$/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * Why a file name reported by a script is unacceptable, or null if it is fine.
 * A name must be a single safe path component (the storage layout keeps one
 * file per name, DESIGN §9): the file lies directly in `back_dir`. The reason
 * reads after the name, e.g. `"../x" escapes back_dir (it has a ".." segment)`.
 */
export function checkRelativeName(name: string): string | null {
  const problem = componentProblem(name);
  if (problem === null) return null;
  if (problem === 'empty' || problem === 'nul' || problem === 'too_long') {
    return describeComponentProblem(problem);
  }
  if (name.startsWith('/') || name.startsWith('\\')) {
    return 'is an absolute path; it must be a file name inside back_dir';
  }
  if (name.split(/[/\\]/).includes('..')) return 'escapes back_dir (it has a ".." segment)';
  if (problem === 'separator') {
    return `${describeComponentProblem(problem)}; the file must be directly inside back_dir`;
  }
  return describeComponentProblem(problem);
}

/** What a log's first two lines say. */
export type LogVerdict =
  | { say: 'empty' }
  | { say: 'garbled'; firstLine: string }
  | { say: 'wrong'; text: string | null }
  | { say: 'ok'; name: string | null };

/** Reads line 1 (`ok` / `wrong`, any case) and line 2; later lines are ignored. */
export function readVerdict(content: string): LogVerdict {
  if (stripBom(content).trim() === '') return { say: 'empty' };
  const lines = parseLogLines(content);
  const first = (lines[0] ?? '').trim();
  const second = (lines[1] ?? '').trim();
  const rest = second === '' ? null : second;
  switch (first.toLowerCase()) {
    case 'ok':
      return { say: 'ok', name: rest };
    case 'wrong':
      return { say: 'wrong', text: rest };
    default:
      return { say: 'garbled', firstLine: lines[0] ?? '' };
  }
}

/** Whether a log was written at or after the run's start, within STALE_TOLERANCE_MS. */
export function isFresh(mtimeMs: number, runStartedAtMs: number): boolean {
  return Number.isFinite(mtimeMs) && mtimeMs >= runStartedAtMs - STALE_TOLERANCE_MS;
}

/** Cuts to at most `max` UTF-16 units without splitting a surrogate pair. */
export function truncateChars(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
  return text.slice(0, end);
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** A string in double quotes with control characters escaped, shortened with `…`. */
function quote(text: string, max: number): string {
  const cut = truncateChars(text, max);
  return cut.length < text.length ? `${JSON.stringify(cut)}…` : JSON.stringify(cut);
}

/** A script's free error text, shortened with `…`. */
function excerpt(text: string): string {
  const cut = truncateChars(text, MAX_QUOTED_TEXT_CHARS);
  return cut.length < text.length ? `${cut}…` : cut;
}

/** An epoch time for a message; never throws on out-of-range values. */
function formatTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

function failed(code: ContractErrorCode, error: string, log: string): ContractOutcome {
  return { status: 'failed', code, error: truncateChars(error, MAX_ERROR_CHARS), log };
}

function garbledLine(file: string, firstLine: string): string {
  const shown = quote(firstLine, MAX_QUOTED_LINE_CHARS);
  return `${file} is garbled: line 1 is ${shown}, expected "ok" or "wrong"`;
}

/** Decides the outcome of one run of an instance's script. */
export function applyContract(input: ContractInput): ContractOutcome {
  const log = input.backLog === null ? '' : truncateChars(stripBom(input.backLog.content), MAX_LOG_CHARS);
  const fresh = input.backLog !== null && isFresh(input.backLog.mtimeMs, input.runStartedAtMs);
  const verdict = input.backLog !== null && fresh ? readVerdict(input.backLog.content) : null;

  const ending = checkEnding(input, verdict);
  if (ending) return failed(ending.code, ending.error, log);

  if (input.backLog === null) {
    return failed('back_log_missing', 'script did not write back_log: the file does not exist', log);
  }
  if (verdict === null) {
    return failed('back_log_stale', staleMessage(input.backLog.mtimeMs, input.runStartedAtMs), log);
  }

  const named = checkBackLog(verdict);
  if ('code' in named) return failed(named.code, named.error, log);
  if (!input.lastAllLogConfigured) {
    return { status: 'ok', kind: 'single', filename: named.name, baseFilename: null, log };
  }

  const base = checkLastAllLog(input.lastAllLog, named.name);
  if ('code' in base) return failed(base.code, base.error, log);
  if (base.name === named.name) {
    return { status: 'ok', kind: 'full', filename: named.name, baseFilename: null, log };
  }
  return { status: 'ok', kind: 'incremental', filename: named.name, baseFilename: base.name, log };
}

interface Problem {
  code: ContractErrorCode;
  error: string;
}

interface Named {
  name: string;
}

/** How the process ended: timeout, signal, nonzero exit. `verdict` is a fresh back_log's, for context. */
function checkEnding(input: ContractInput, verdict: LogVerdict | null): Problem | null {
  if (input.timedOut) {
    return {
      code: 'timeout',
      error: `script timed out after ${input.timeoutSeconds} seconds; its process group was killed`,
    };
  }
  if (input.exitCode === null) {
    const error =
      input.signal === null
        ? 'script ended without an exit code or a signal'
        : `script was killed by signal ${input.signal}`;
    return { code: 'killed', error };
  }
  if (input.exitCode !== 0) {
    return {
      code: 'exit_nonzero',
      error: `script exited with code ${input.exitCode}${exitContext(verdict)}`,
    };
  }
  return null;
}

/** What a fresh back_log adds to a nonzero exit code's message. */
function exitContext(verdict: LogVerdict | null): string {
  if (verdict?.say === 'wrong') {
    return verdict.text === null
      ? '; back_log says wrong without an error text'
      : `; back_log says wrong: ${excerpt(verdict.text)}`;
  }
  if (verdict?.say === 'ok')
    return ' (back_log says ok, but a nonzero exit code is a failure whatever the log says)';
  return '';
}

function staleMessage(mtimeMs: number, runStartedAtMs: number): string {
  if (!Number.isFinite(mtimeMs)) {
    return 'script did not write back_log: its modification time is not a valid time';
  }
  return (
    `script did not write back_log: it is older than this run's start ` +
    `(modified ${formatTime(mtimeMs)}, run started ${formatTime(runStartedAtMs)})`
  );
}

/** A fresh back_log's verdict → this run's file name, or why there is none. */
function checkBackLog(verdict: LogVerdict): Problem | Named {
  switch (verdict.say) {
    case 'empty':
      return { code: 'back_log_empty', error: 'back_log is empty: expected "ok" or "wrong" on line 1' };
    case 'garbled':
      return { code: 'back_log_garbled', error: garbledLine('back_log', verdict.firstLine) };
    case 'wrong':
      return {
        code: 'script_reported_wrong',
        error:
          verdict.text === null
            ? 'script reported wrong without an error text (back_log has no line 2)'
            : `script reported wrong in back_log: ${excerpt(verdict.text)}`,
      };
    case 'ok': {
      if (verdict.name === null) {
        return { code: 'ok_without_name', error: 'back_log says ok but gives no file name on line 2' };
      }
      const reason = checkRelativeName(verdict.name);
      if (reason !== null) {
        const shown = quote(verdict.name, MAX_QUOTED_TEXT_CHARS);
        return { code: 'bad_file_name', error: `back_log names a bad file ${shown}: ${reason}` };
      }
      return { name: verdict.name };
    }
  }
}

/**
 * The base full named by last_all_log, or why there is none. A `wrong` line 1
 * is the script's own word that the last full failed (`last_full_failed`); a
 * file we cannot read as either answer — empty, a first line that is neither
 * `ok` nor `wrong`, `ok` without a name — is `last_all_log_garbled`, so the
 * operator looks at the file rather than at the full's run. Both are failures.
 */
function checkLastAllLog(lastAllLog: LogSnapshot | null, name: string): Problem | Named {
  const run = `this run's file ${quote(name, MAX_QUOTED_TEXT_CHARS)}`;
  if (lastAllLog === null) {
    return {
      code: 'last_all_log_missing',
      error: `last_all_log is missing: cannot tell whether ${run} is a full or an incremental`,
    };
  }
  const verdict = readVerdict(lastAllLog.content);
  switch (verdict.say) {
    case 'empty':
      return {
        code: 'last_all_log_garbled',
        error: `last_all_log is empty: cannot tell the base full of ${run}`,
      };
    case 'garbled':
      return {
        code: 'last_all_log_garbled',
        error: `${garbledLine('last_all_log', verdict.firstLine)}; cannot tell the base full of ${run}`,
      };
    case 'wrong': {
      const text =
        verdict.text === null ? 'last_all_log says wrong without an error text' : excerpt(verdict.text);
      return {
        code: 'last_full_failed',
        error: `the last full backup failed: ${text} (from last_all_log); ${run} has no good base full`,
      };
    }
    case 'ok': {
      if (verdict.name === null) {
        return {
          code: 'last_all_log_garbled',
          error: `last_all_log says ok but gives no file name on line 2; cannot tell the base full of ${run}`,
        };
      }
      const reason = checkRelativeName(verdict.name);
      if (reason !== null) {
        const shown = quote(verdict.name, MAX_QUOTED_TEXT_CHARS);
        return { code: 'bad_file_name', error: `last_all_log names a bad base file ${shown}: ${reason}` };
      }
      return { name: verdict.name };
    }
  }
}
