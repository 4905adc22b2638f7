import type { LeasedJob } from '../shared/node-protocol.js';
import type { PullHttpResult } from './http-pull.js';

/**
 * What the node's main thread and its receiver threads (receiver-pool.ts,
 * receiver-thread.ts) say to each other. Plain data, copied by postMessage.
 */

/** Main thread → receiver thread. */
export type ToReceiver =
  | {
      type: 'pull';
      id: number;
      job: LeasedJob;
      root: string;
      timeoutMs: number;
      /** The transfer's own limit (`rsync_bwlimit`); 0 = unlimited. */
      perTransferBytesPerSecond: number;
    }
  | { type: 'abort'; id: number; reason: string }
  /** The node-wide limit changed (sent to every thread; also sent once at start). */
  | { type: 'node-rate'; bytesPerSecond: number; burstBytes: number }
  /** Answer to a `take`: the bytes may pass, or `error` says why they never will. */
  | { type: 'granted'; id: number; seq: number; error: string | null };

/** Receiver thread → main thread. */
export type FromReceiver =
  /** The thread has loaded and takes pulls. */
  | { type: 'ready' }
  /** Bytes in the transfer's part so far (resumed bytes included); sent at most every PROGRESS_INTERVAL_MS. */
  | { type: 'progress'; id: number; bytes: number }
  /** Asks the node-wide token bucket, which lives on the main thread, for `bytes`. */
  | { type: 'take'; id: number; seq: number; bytes: number }
  | { type: 'result'; id: number; result: PullHttpResult }
  /** pullHttp threw (a name that is no path, a different file in place): the message. */
  | { type: 'thrown'; id: number; name: string; message: string };

/** A receiver thread reports a transfer's progress this often at most (and once at its end). */
export const PROGRESS_INTERVAL_MS = 100;
