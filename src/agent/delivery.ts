import { type ClientOptions, sendReport } from './server-client.js';
import type { Spool } from './spool.js';

/**
 * Delivery of the spool to the server (DESIGN §3, invariant 1): oldest first,
 * a report is deleted only after a 2xx, a permanent refusal moves it to
 * spool/rejected/ (logged loudly), anything transient ends the pass and the
 * loop backs off exponentially. The server treats a repeated report_id as the
 * same report, so a report sent twice (a crash between the 2xx and the delete)
 * is still stored once.
 */

/** Where the agent's runtime writes its messages; a pino logger fits. */
export interface AgentLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_MAX_MS = 5 * 60_000;
/** ±20 %. */
export const BACKOFF_JITTER = 0.2;
/** With nothing to do, the loop still looks at the spool this often (other agent processes may fill it). */
export const IDLE_RESCAN_MS = 60_000;

/**
 * The wait after the `attempt`-th consecutive failure (1, 2, 3, …):
 * 1 s, 2 s, 4 s … capped at 5 min, then ±20 % jitter from `random` ∈ [0, 1).
 */
export function nextBackoffMs(attempt: number, random: () => number = Math.random): number {
  const n = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  // 2^(n-1) overflows to Infinity for huge n; the cap handles it.
  const base = Math.min(BACKOFF_BASE_MS * 2 ** (n - 1), BACKOFF_MAX_MS);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(base * (1 + BACKOFF_JITTER * (2 * r - 1)));
}

export interface DeliverSpoolOptions {
  spool: Spool;
  serverUrl: string;
  credential: string;
  log: AgentLog;
  /** Consecutive failed passes before this one (0 after a success); sets the backoff. */
  failures?: number;
  random?: () => number;
  /** The backoff after the n-th consecutive failure; default nextBackoffMs(n, random). */
  backoff?: (attempt: number) => number;
  client?: ClientOptions;
  /** Stop after the report in flight when this says so (the loop is stopping). */
  shouldStop?: () => boolean;
}

export interface DeliveryPass {
  /** Stored by the server on this pass. */
  stored: number;
  /** Acknowledged as already stored (sent before, e.g. by a run that crashed before deleting it). */
  duplicates: number;
  /** Refused for good and moved to spool/rejected/. */
  rejected: number;
  /** Still in the spool after the pass. */
  remaining: number;
  /** Set when the pass stopped on a transient problem: why, and how long to wait. */
  retry: { reason: string; backoffMs: number } | null;
}

/** One pass over the spool, oldest first, until it is empty or a transient problem stops it. */
export async function deliverSpool(options: DeliverSpoolOptions): Promise<DeliveryPass> {
  const { spool, log } = options;
  const pass: DeliveryPass = { stored: 0, duplicates: 0, rejected: 0, remaining: 0, retry: null };
  for await (const entry of spool.entries()) {
    if (options.shouldStop?.()) break;
    const result = await sendReport(options.serverUrl, options.credential, entry.report, options.client);
    const what = `report ${entry.reportId} ([${entry.report.section}] ${entry.report.status}, created ${entry.report.created_at})`;
    if (result.kind === 'stored' || result.kind === 'duplicate') {
      await spool.remove(entry.reportId);
      if (result.kind === 'stored') pass.stored += 1;
      else pass.duplicates += 1;
      continue;
    }
    if (result.kind === 'rejected') {
      const reason = `the server refused it for good: ${result.status} ${result.code}: ${result.message}`;
      const moved = await spool.reject(entry.reportId, reason);
      pass.rejected += 1;
      log.error(
        `REPORT REJECTED: ${what} ${reason}; it will not be sent again, kept in ${moved ?? spool.rejectedDir}`,
      );
      continue;
    }
    const failures = (options.failures ?? 0) + 1;
    const backoffMs = options.backoff ? options.backoff(failures) : nextBackoffMs(failures, options.random);
    pass.retry = { reason: result.reason, backoffMs };
    if (result.status === 401) log.error(`cannot deliver reports: ${result.reason}`);
    break;
  }
  pass.remaining = await spool.count();
  return pass;
}

export interface DeliveryOptions {
  spool: Spool;
  serverUrl: string;
  /** The host's credential; null while it is not enrolled (the loop then waits for a kick). */
  credential: () => string | null;
  log: AgentLog;
  random?: () => number;
  /** The backoff after the n-th consecutive failure; default nextBackoffMs(n, random). */
  backoff?: (attempt: number) => number;
  client?: ClientOptions;
  /** Default IDLE_RESCAN_MS. */
  idleRescanMs?: number;
}

/**
 * The daemon's delivery loop: sends the spool whenever it is kicked (a new
 * report) or a backoff / idle rescan timer ends, keeps trying while the server
 * is down, and on `stop()` finishes the send in flight and returns.
 */
export class Delivery {
  private running = false;
  private stopping = false;
  private kicked = false;
  private failures = 0;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private lastPassValue: DeliveryPass | null = null;

  constructor(private readonly options: DeliveryOptions) {}

  /** The result of the last pass (for status output and tests). */
  get lastPass(): DeliveryPass | null {
    return this.lastPassValue;
  }

  /** Consecutive failed passes. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Starts the loop; its first pass delivers what an earlier run left in the spool. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.kicked = true;
    this.loopDone = this.loop();
  }

  /** A new report is in the spool: send now. */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** Stops the loop after the send in flight (the rest stays in the spool). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
    this.running = false;
  }

  private async loop(): Promise<void> {
    const { log } = this.options;
    while (!this.stopping) {
      let waitMs = this.options.idleRescanMs ?? IDLE_RESCAN_MS;
      const credential = this.options.credential();
      if (credential !== null) {
        this.kicked = false;
        try {
          const pass = await deliverSpool({
            spool: this.options.spool,
            serverUrl: this.options.serverUrl,
            credential,
            log,
            failures: this.failures,
            ...(this.options.random ? { random: this.options.random } : {}),
            ...(this.options.backoff ? { backoff: this.options.backoff } : {}),
            ...(this.options.client ? { client: this.options.client } : {}),
            shouldStop: () => this.stopping,
          });
          this.lastPassValue = pass;
          if (pass.retry !== null) {
            this.failures += 1;
            waitMs = pass.retry.backoffMs;
            log.warn(
              `report delivery paused: ${pass.retry.reason}; ${pass.remaining} report(s) kept in the spool, ` +
                `retrying in ${Math.round(waitMs / 1000)} s (attempt ${this.failures})`,
            );
          } else {
            if (this.failures > 0)
              log.info(`report delivery resumed after ${this.failures} failed attempt(s)`);
            this.failures = 0;
            if (pass.stored + pass.duplicates > 0) {
              log.info(
                `delivered ${pass.stored + pass.duplicates} report(s); ${pass.remaining} left in the spool`,
              );
            }
            // New reports that arrived during the pass: go again at once.
            if (this.kicked) continue;
          }
        } catch (error) {
          // The spool itself failed (disk full, permissions): keep the loop alive and retry.
          this.failures += 1;
          waitMs = this.options.backoff
            ? this.options.backoff(this.failures)
            : nextBackoffMs(this.failures, this.options.random);
          log.error(
            `report delivery failed: ${error instanceof Error ? error.message : String(error)}; ` +
              `retrying in ${Math.round(waitMs / 1000)} s`,
          );
        }
      }
      if (this.stopping) break;
      await this.sleep(waitMs);
    }
  }

  /** Waits `ms`, or until kick() / stop(). A kick always ends the wait, even a backoff: "send now". */
  private sleep(ms: number): Promise<void> {
    if (this.kicked && this.options.credential() !== null) return Promise.resolve();
    return new Promise<void>((resolveSleep) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolveSleep();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
