import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { LeasedJob } from '../shared/node-protocol.js';
import { type PullHttpResult, pullHttp } from './http-pull.js';
import type { FromReceiver, ToReceiver } from './receiver-messages.js';
import { TokenBucket } from './token-bucket.js';

/**
 * Where a storage node's HTTP pulls run: spread over receiver threads
 * (receiver-thread.ts), each with its own event loop, so that socket reads,
 * BLAKE3 and the part's synchronous writes of several transfers use every
 * CPU, and a slow disk never holds up the main thread's heartbeats, leases
 * and progress reports. A pull goes to the thread with the fewest transfers.
 *
 * The node-wide bandwidth limit stays one TokenBucket here; threads ask it
 * for bytes only while it is limited. With `threads: 0` the pulls run on the
 * calling thread (the same code, no worker).
 *
 * A thread that dies fails its transfers (thrown errors, which the daemon
 * reports as transient) and is replaced; one that never started is not, and
 * once none is left the pulls run on the calling thread.
 */

/** Receiver threads when the configuration does not say: one per CPU, at most this many. */
export const MAX_DEFAULT_RECEIVER_THREADS = 4;

export function defaultReceiverThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), MAX_DEFAULT_RECEIVER_THREADS));
}

export interface ReceiverPullOptions {
  job: LeasedJob;
  root: string;
  timeoutMs: number;
  /** The transfer's own limit in bytes per second; 0 = unlimited. */
  perTransferBytesPerSecond: number;
  /** Bytes in the part so far (resumed bytes included). From a thread: at most every 100 ms, and at the end. */
  onProgress?: (bytesDone: number) => void;
  /** Aborts the transfer (shutdown, lease lost); the part is kept for a resume. */
  signal?: AbortSignal;
}

export interface ReceiverPoolOptions {
  /** Receiver threads; 0 runs the pulls on the calling thread. */
  threads: number;
  /** The node-wide bucket every pull passes through. */
  nodeBucket: TokenBucket;
  /** The thread's script; default receiver-thread.js beside this module. */
  entry?: URL;
  /** A thread died (it is replaced, unless it never started: then its pulls run on the calling thread). */
  onThreadError?: (error: Error) => void;
}

interface Running {
  options: ReceiverPullOptions;
  resolve: (result: PullHttpResult) => void;
  reject: (error: Error) => void;
  onAbort: () => void;
}

/** One receiver thread and the transfers it runs. */
class Receiver {
  readonly running = new Map<number, Running>();
  readonly worker: Worker;
  /** Settles when the thread has loaded (resolves) or is gone (rejects). */
  readonly ready: Promise<void>;
  isReady = false;
  markReady: () => void = () => undefined;
  markGone: (error: Error) => void = () => undefined;

  constructor(
    entry: URL,
    onMessage: (receiver: Receiver, message: FromReceiver) => void,
    onGone: (receiver: Receiver, error: Error) => void,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.markGone = reject;
    });
    this.ready.catch(() => undefined);
    this.worker = new Worker(entry, { name: 'ubackup-receiver' });
    this.worker.on('message', (message: FromReceiver) => onMessage(this, message));
    this.worker.on('error', (error: Error) => onGone(this, error));
    this.worker.on('exit', (code: number) =>
      onGone(this, new Error(`the receiver thread exited with code ${code}`)),
    );
  }

  post(message: ToReceiver): void {
    this.worker.postMessage(message);
  }
}

export class ReceiverPool {
  private readonly receivers: Receiver[] = [];
  private readonly entry: URL;
  private readonly nodeBucket: TokenBucket;
  private readonly onThreadError: ((error: Error) => void) | undefined;
  private nextId = 1;
  private closed = false;

  constructor(options: ReceiverPoolOptions) {
    if (!Number.isSafeInteger(options.threads) || options.threads < 0) {
      throw new RangeError(`receiver threads must be an integer ≥ 0, got ${options.threads}`);
    }
    this.entry = options.entry ?? new URL('./receiver-thread.js', import.meta.url);
    this.nodeBucket = options.nodeBucket;
    this.onThreadError = options.onThreadError;
    for (let i = 0; i < options.threads; i += 1) this.receivers.push(this.startReceiver());
  }

  get threads(): number {
    return this.receivers.length;
  }

  /** pullHttp through the node-wide bucket and a bucket of the transfer's own, on the least busy thread. */
  pull(options: ReceiverPullOptions): Promise<PullHttpResult> {
    if (this.closed) return Promise.reject(new Error('the receiver pool is closed'));
    const receiver = this.leastBusy();
    if (receiver === null) {
      return pullHttp({
        job: options.job,
        root: options.root,
        limiters: [this.nodeBucket, new TokenBucket({ bytesPerSecond: options.perTransferBytesPerSecond })],
        timeoutMs: options.timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
    }
    const id = this.nextId++;
    return new Promise<PullHttpResult>((resolve, reject) => {
      const onAbort = (): void =>
        receiver.post({ type: 'abort', id, reason: reasonText(options.signal?.reason) });
      receiver.running.set(id, { options, resolve, reject, onAbort });
      receiver.post({
        type: 'pull',
        id,
        job: options.job,
        root: options.root,
        timeoutMs: options.timeoutMs,
        perTransferBytesPerSecond: options.perTransferBytesPerSecond,
      });
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves once every thread has loaded; rejects when one could not start. */
  async ready(): Promise<void> {
    await Promise.all(this.receivers.map((receiver) => receiver.ready));
  }

  /** Tells every thread the node-wide bucket's rate; call after `nodeBucket.setRate`. */
  nodeRateChanged(): void {
    for (const receiver of this.receivers) receiver.post(this.rateMessage());
  }

  /** Stops the threads; transfers still running fail. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const receivers = this.receivers.splice(0);
    await Promise.all(receivers.map((receiver) => receiver.worker.terminate()));
    for (const receiver of receivers) this.failAll(receiver, new Error('the receiver pool was closed'));
  }

  private rateMessage(): ToReceiver {
    return {
      type: 'node-rate',
      bytesPerSecond: this.nodeBucket.bytesPerSecond,
      burstBytes: this.nodeBucket.burstBytes,
    };
  }

  private startReceiver(): Receiver {
    const receiver = new Receiver(
      this.entry,
      (from, message) => this.onMessage(from, message),
      (from, error) => this.onGone(from, error),
    );
    receiver.post(this.rateMessage());
    return receiver;
  }

  private leastBusy(): Receiver | null {
    let best: Receiver | null = null;
    for (const receiver of this.receivers) {
      if (best === null || receiver.running.size < best.running.size) best = receiver;
    }
    return best;
  }

  private onMessage(receiver: Receiver, message: FromReceiver): void {
    if (message.type === 'ready') {
      receiver.isReady = true;
      receiver.markReady();
      return;
    }
    const running = receiver.running.get(message.id);
    if (running === undefined) return;
    switch (message.type) {
      case 'progress':
        running.options.onProgress?.(message.bytes);
        return;
      case 'take': {
        const { seq, bytes } = message;
        this.nodeBucket.take(bytes, running.options.signal).then(
          () => receiver.post({ type: 'granted', id: message.id, seq, error: null }),
          (error: unknown) =>
            receiver.post({ type: 'granted', id: message.id, seq, error: reasonText(error) }),
        );
        return;
      }
      case 'result':
        this.settle(receiver, message.id);
        running.resolve(message.result);
        return;
      case 'thrown': {
        this.settle(receiver, message.id);
        const error = new Error(message.message);
        error.name = message.name;
        running.reject(error);
        return;
      }
    }
  }

  private settle(receiver: Receiver, id: number): void {
    const running = receiver.running.get(id);
    receiver.running.delete(id);
    running?.options.signal?.removeEventListener('abort', running.onAbort);
  }

  /**
   * A thread died: its transfers fail, and a new thread takes its place. One
   * that never started is not replaced (it would fail again, in a loop): with
   * none left, pulls run on the calling thread.
   */
  private onGone(receiver: Receiver, error: Error): void {
    const index = this.receivers.indexOf(receiver);
    if (index < 0) return;
    this.receivers.splice(index, 1);
    receiver.markGone(error);
    this.failAll(receiver, new Error(`receiver thread failed: ${error.message}`));
    void receiver.worker.terminate();
    this.onThreadError?.(error);
    if (!this.closed && receiver.isReady) this.receivers.push(this.startReceiver());
  }

  private failAll(receiver: Receiver, error: Error): void {
    for (const [id, running] of [...receiver.running]) {
      this.settle(receiver, id);
      running.reject(error);
    }
  }
}

function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}
