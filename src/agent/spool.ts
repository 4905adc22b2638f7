import { mkdir, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from '../shared/fsync-dir.js';
import { type Report, ReportSchema } from '../shared/report.js';
import { writeFileAtomic } from './agent-state.js';

/**
 * The agent's durable outbox, `<state_dir>/spool/` (DESIGN §3, invariant 1):
 * a report is written here (temp file, fsync, rename, fsync of the directory)
 * before it is sent, and deleted only after the server answered 2xx. A report
 * the server refuses for good (a 4xx other than 401), or a file that cannot be
 * read back as a report, is moved to `spool/rejected/` with the reason next to
 * it: never retried, never silently lost.
 *
 * File names are `<created_at ms, 15 digits>-<report_id>.json`, so the
 * lexical order of names is the order of the runs.
 */

export const SPOOL_DIR_NAME = 'spool';
export const REJECTED_DIR_NAME = 'rejected';
const TMP_SUFFIX = '.tmp';
/** Temp files older than this are leftovers of a crash, in milliseconds. */
const STALE_TMP_MS = 10 * 60_000;
const SPOOL_FILE = /^(\d{15})-([0-9a-fA-F-]{36})\.json$/;

export interface SpooledReport {
  reportId: string;
  /** File name inside the spool directory. */
  file: string;
  report: Report;
}

/** What `rejected/<name>.reason.json` holds. */
export interface RejectionRecord {
  report_id: string | null;
  file: string;
  rejected_at: string;
  reason: string;
}

export interface SpoolOptions {
  /** Told about every spool file moved to rejected/ because it could not be read as a report. */
  onCorrupt?: (file: string, reason: string) => void;
  /** Epoch-ms clock for rejected_at; default Date.now. */
  now?: () => number;
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The spool file name of a report. */
export function spoolFileName(report: Pick<Report, 'created_at' | 'report_id'>): string {
  const ms = Date.parse(report.created_at);
  const stamp = String(Number.isFinite(ms) && ms > 0 ? ms : 0).padStart(15, '0');
  return `${stamp}-${report.report_id}.json`;
}

export class Spool {
  /** report_id → file name, as last seen by this object. */
  private readonly names = new Map<string, string>();

  private constructor(
    readonly dir: string,
    readonly rejectedDir: string,
    private readonly options: SpoolOptions,
  ) {}

  /**
   * Opens (creating, mode 0700) `<stateDir>/spool/` and its `rejected/`, and
   * deletes temp files left by a crash in the middle of `put` (such a report
   * was never acknowledged to the caller).
   */
  static async open(stateDir: string, options: SpoolOptions = {}): Promise<Spool> {
    const dir = join(stateDir, SPOOL_DIR_NAME);
    const rejectedDir = join(dir, REJECTED_DIR_NAME);
    await mkdir(rejectedDir, { recursive: true, mode: 0o700 });
    const now = (options.now ?? Date.now)();
    for (const where of [dir, rejectedDir]) {
      for (const name of await readdir(where)) {
        if (!name.endsWith(TMP_SUFFIX)) continue;
        const path = join(where, name);
        // Old ones only: another agent process (run-once next to the daemon) may be writing a young one.
        const info = await stat(path).catch(() => null);
        if (info !== null && now - info.mtimeMs > STALE_TMP_MS) await unlink(path).catch(() => undefined);
      }
    }
    return new Spool(dir, rejectedDir, options);
  }

  /** Durably stores a report (fsync of file and directory) before it may be sent. */
  async put(report: Report): Promise<void> {
    const name = spoolFileName(report);
    await writeFileAtomic(join(this.dir, name), `${JSON.stringify(report)}\n`, 0o600);
    this.names.set(report.report_id, name);
  }

  /**
   * The spooled reports, oldest first. A file that is not JSON or not a valid
   * report is moved to rejected/ with the reason (and `onCorrupt` is called).
   */
  async list(): Promise<SpooledReport[]> {
    const reports: SpooledReport[] = [];
    for await (const entry of this.entries()) reports.push(entry);
    return reports;
  }

  /**
   * Like list(), but reads one file at a time as the caller asks for it, so a
   * long outage's backlog is not read whole by every delivery attempt.
   */
  async *entries(): AsyncGenerator<SpooledReport> {
    const files = (await readdir(this.dir)).filter((name) => SPOOL_FILE.test(name)).sort();
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(join(this.dir, file), 'utf8');
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') continue; // delivered by another process meanwhile
        throw error;
      }
      const problem = this.problemOf(file, text);
      if ('reason' in problem) {
        const moved = await this.moveToRejected(
          file,
          problem.reportId,
          `corrupt spool file: ${problem.reason}`,
        );
        if (moved !== null) this.options.onCorrupt?.(file, problem.reason);
        continue;
      }
      this.names.set(problem.report.report_id, file);
      yield { reportId: problem.report.report_id, file, report: problem.report };
    }
  }

  /** How many reports wait in the spool (files only; nothing is parsed). */
  async count(): Promise<number> {
    return (await readdir(this.dir)).filter((name) => SPOOL_FILE.test(name)).length;
  }

  /** Deletes a delivered report. False when it was not there (e.g. another process delivered it). */
  async remove(reportId: string): Promise<boolean> {
    const name = await this.fileOf(reportId);
    if (name === null) return false;
    try {
      await unlink(join(this.dir, name));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') {
        this.names.delete(reportId);
        return false;
      }
      throw error;
    }
    this.names.delete(reportId);
    await fsyncDir(this.dir);
    return true;
  }

  /**
   * Moves a report the server refused for good to rejected/, with `reason`
   * in `<name>.reason.json` next to it. Returns the report's new path, or null
   * when it was not in the spool.
   */
  async reject(reportId: string, reason: string): Promise<string | null> {
    const name = await this.fileOf(reportId);
    if (name === null) return null;
    const moved = await this.moveToRejected(name, reportId, reason);
    this.names.delete(reportId);
    return moved;
  }

  /** What rejected/ holds, oldest first. */
  async listRejected(): Promise<RejectionRecord[]> {
    const names = (await readdir(this.rejectedDir)).filter((name) => name.endsWith('.reason.json')).sort();
    const records: RejectionRecord[] = [];
    for (const name of names) {
      try {
        records.push(JSON.parse(await readFile(join(this.rejectedDir, name), 'utf8')) as RejectionRecord);
      } catch {
        // a reason file we cannot read is still visible on disk
      }
    }
    return records;
  }

  private problemOf(
    file: string,
    text: string,
  ): { report: Report } | { reason: string; reportId: string | null } {
    const fileId = SPOOL_FILE.exec(file)?.[2] ?? null;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return { reason: `not JSON (${describeError(error)})`, reportId: fileId };
    }
    const parsed = ReportSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
        .join('; ');
      return { reason: `not a valid report (${issues})`, reportId: fileId };
    }
    if (fileId !== null && parsed.data.report_id.toLowerCase() !== fileId.toLowerCase()) {
      return {
        reason: `the file name says report ${fileId} but it holds report ${parsed.data.report_id}`,
        reportId: fileId,
      };
    }
    return { report: parsed.data };
  }

  private async fileOf(reportId: string): Promise<string | null> {
    const known = this.names.get(reportId);
    if (known !== undefined) return known;
    const suffix = `-${reportId}.json`;
    const found = (await readdir(this.dir)).find((name) => SPOOL_FILE.test(name) && name.endsWith(suffix));
    return found ?? null;
  }

  /** Null when the file vanished meanwhile (another agent process delivered it). */
  private async moveToRejected(
    file: string,
    reportId: string | null,
    reason: string,
  ): Promise<string | null> {
    const now = this.options.now ?? Date.now;
    const record: RejectionRecord = {
      report_id: reportId,
      file,
      rejected_at: new Date(now()).toISOString(),
      reason,
    };
    // The reason first: a crash between the two steps leaves the report in the spool (sent again).
    await writeFileAtomic(
      join(this.rejectedDir, `${file}.reason.json`),
      `${JSON.stringify(record, null, 2)}\n`,
      0o600,
    );
    const target = join(this.rejectedDir, file);
    try {
      await rename(join(this.dir, file), target);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
      await unlink(join(this.rejectedDir, `${file}.reason.json`)).catch(() => undefined);
      return null;
    }
    await fsyncDir(this.rejectedDir);
    await fsyncDir(this.dir);
    return target;
  }
}
