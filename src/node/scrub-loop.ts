import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentLog } from '../agent/delivery.js';
import { describeError } from '../shared/describe-error.js';
import type { ScrubItem, ScrubResult } from '../shared/node-protocol.js';
import { type ReadLimiter, scrubFile } from './scrub-file.js';
import { TokenBucket } from './token-bucket.js';

/**
 * The node's scrub (DESIGN §11): it leases the stored copies that are due
 * (last checked longer than `scrub_period` ago) from the server, re-hashes
 * each one (scrub-file.ts) no faster than `scrub_bytes_per_second`, and
 * reports what it found; the server marks damaged copies unverified, so
 * restores skip them, and raises an `integrity` alert.
 *
 * The rate is a token bucket of the scrub's own, apart from the node-wide
 * bucket of transfers: the scrub never takes a transfer's share, and the
 * disk sees at most this much more reading. With nothing due the loop sleeps
 * (at most a minute, never longer than the period). `stop()` aborts the file
 * being hashed and the sleep at once; results not yet reported are dropped
 * (those copies come again with a later lease).
 */

export type ServerCall<T> = { ok: true; value: T } | { ok: false; error: string };

export interface ScrubServer {
  /** Up to `limit` copies due for a re-hash, least recently checked first. */
  lease(limit: number, periodSeconds: number): Promise<ServerCall<ScrubItem[]>>;
  /** Records findings; answers how many counted. */
  report(results: ScrubResult[]): Promise<ServerCall<number>>;
}

export interface ScrubLoopOptions {
  root: string;
  /** Bytes per second; 0 turns the scrub off. */
  bytesPerSecond: number;
  periodSeconds: number;
  server: ScrubServer;
  log: AgentLog;
  /** Sleep when nothing is due or the server cannot be reached (default: a minute, at most the period). */
  idleMs?: number;
  /** Copies per lease (default 64). */
  batchSize?: number;
  /** The read allowance (default: a TokenBucket at `bytesPerSecond`). */
  limiter?: ReadLimiter;
  /** Told the size of each file checked (whole or not), for the metrics. */
  onScrubbed?: (bytes: number) => void;
}

export interface ScrubLoop {
  /** Stops at once (the file being hashed is abandoned) and resolves when the loop has ended. */
  stop(): Promise<void>;
}

export const DEFAULT_SCRUB_BATCH = 64;
export const MAX_SCRUB_IDLE_MS = 60_000;
/** Findings are reported once this many are pending … */
const REPORT_EVERY_RESULTS = 32;
/** … or the oldest pending one is this old, so a batch of big files does not hold them for hours. */
const REPORT_EVERY_MS = 10_000;

export function startScrubLoop(options: ScrubLoopOptions): ScrubLoop {
  const { log } = options;
  if (options.bytesPerSecond <= 0) {
    log.info('scrub_bytes_per_second = 0: this node does not scrub its stored files');
    return { stop: async () => undefined };
  }
  const abort = new AbortController();
  const { signal } = abort;
  const limiter = options.limiter ?? new TokenBucket({ bytesPerSecond: options.bytesPerSecond });
  const idleMs = options.idleMs ?? Math.min(MAX_SCRUB_IDLE_MS, options.periodSeconds * 1000);
  const batchSize = options.batchSize ?? DEFAULT_SCRUB_BATCH;
  const nap = (ms: number): Promise<void> => sleep(ms, undefined, { signal }).catch(() => undefined);

  /** Reports `results`; false when the server did not take them. */
  const report = async (results: ScrubResult[]): Promise<boolean> => {
    if (results.length === 0) return true;
    const answer = await options.server.report(results);
    if (!answer.ok) {
      log.warn(
        `scrub: could not report ${results.length} finding(s) (${answer.error}); those files are checked again later`,
      );
      return false;
    }
    return true;
  };

  /** Re-hashes a leased batch; the number of findings the server took. */
  const scrubBatch = async (items: readonly ScrubItem[]): Promise<number> => {
    let pending: ScrubResult[] = [];
    let pendingSince = 0;
    let reported = 0;
    let whole = 0;
    let damaged = 0;
    const flush = async (): Promise<void> => {
      const taken = pending;
      pending = [];
      if (await report(taken)) reported += taken.length;
    };
    for (const item of items) {
      if (signal.aborted) return reported;
      const check = await scrubFile(options.root, item, { limiter, signal });
      if (check.kind === 'transient') {
        log.warn(`scrub: backup ${item.backup_id}: ${check.reason}; trying again later`);
        continue;
      }
      const { result } = check;
      options.onScrubbed?.(item.size);
      if (result.outcome === 'ok') whole += 1;
      else {
        damaged += 1;
        log.error(
          `scrub: backup ${item.backup_id} (${item.path}) is not whole: ${result.outcome}: ${result.detail ?? ''}; ` +
            'restores skip it until a good copy is back',
        );
      }
      if (pending.length === 0) pendingSince = Date.now();
      pending.push(result);
      if (pending.length >= REPORT_EVERY_RESULTS || Date.now() - pendingSince >= REPORT_EVERY_MS)
        await flush();
    }
    await flush();
    log.info(`scrub: checked ${whole + damaged} stored file(s): ${whole} whole, ${damaged} not`);
    return reported;
  };

  const loop = (async () => {
    log.info(
      `scrub: re-hashing stored files at up to ${options.bytesPerSecond} bytes/s, each at least every ${options.periodSeconds} s`,
    );
    while (!signal.aborted) {
      try {
        const leased = await options.server.lease(batchSize, options.periodSeconds);
        if (!leased.ok) {
          log.warn(`scrub: lease failed: ${leased.error}`);
          await nap(idleMs);
          continue;
        }
        if (leased.value.length === 0) {
          await nap(idleMs);
          continue;
        }
        // Nothing taken (only transient problems, or the server refused the report): do not spin.
        if ((await scrubBatch(leased.value)) === 0) await nap(idleMs);
      } catch (error) {
        if (signal.aborted) return;
        log.error(`scrub: ${describeError(error)}`);
        await nap(idleMs);
      }
    }
  })();

  return {
    stop: async () => {
      abort.abort();
      await loop;
    },
  };
}
