import { parentPort } from 'node:worker_threads';
import { pullHttp } from './http-pull.js';
import { type FromReceiver, PROGRESS_INTERVAL_MS, type ToReceiver } from './receiver-messages.js';
import { type Limiter, MIN_DEFAULT_BURST_BYTES, TokenBucket } from './token-bucket.js';

/**
 * A storage node's receiver thread (receiver-pool.ts starts them): runs the
 * HTTP pulls the main thread hands it, each with its own event loop share,
 * socket reads, BLAKE3 and synchronous writes, as rsync's receivers are
 * processes of their own. The node-wide bandwidth limit stays one bucket on
 * the main thread; this thread asks it for bytes only while it is limited.
 */

const port = parentPort;
if (port === null) throw new Error('receiver-thread.js runs as a worker thread of the storage node');

const send = (message: FromReceiver): void => port.postMessage(message);

/** The node-wide bucket's rate, as the main thread last said it. */
const nodeRate = { bytesPerSecond: 0, burstBytes: MIN_DEFAULT_BURST_BYTES };

/** The node-wide bucket as one transfer on this thread sees it: the shared rate, every take asked of the main thread. */
class NodeLimiter implements Limiter {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

  constructor(private readonly transferId: number) {}

  get bytesPerSecond(): number {
    return nodeRate.bytesPerSecond;
  }

  get burstBytes(): number {
    return nodeRate.burstBytes;
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (nodeRate.bytesPerSecond === 0 || bytes <= 0) return Promise.resolve();
    signal?.throwIfAborted();
    const seq = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      send({ type: 'take', id: this.transferId, seq, bytes });
    });
  }

  granted(seq: number, error: string | null): void {
    const waiter = this.waiting.get(seq);
    if (waiter === undefined) return;
    this.waiting.delete(seq);
    if (error === null) waiter.resolve();
    else waiter.reject(new Error(error));
  }
}

const limiters = new Map<number, NodeLimiter>();
const aborts = new Map<number, AbortController>();

function pull(message: Extract<ToReceiver, { type: 'pull' }>): void {
  const { id } = message;
  const abort = new AbortController();
  aborts.set(id, abort);
  const nodeLimiter = new NodeLimiter(id);
  limiters.set(id, nodeLimiter);
  let sent = -1;
  let latest = -1;
  let lastSentAt = 0;
  let trailing: NodeJS.Timeout | null = null;
  const flushProgress = (): void => {
    if (trailing !== null) clearTimeout(trailing);
    trailing = null;
    if (latest === sent) return;
    sent = latest;
    lastSentAt = performance.now();
    send({ type: 'progress', id, bytes: latest });
  };
  const onProgress = (bytes: number): void => {
    latest = bytes;
    const wait = PROGRESS_INTERVAL_MS - (performance.now() - lastSentAt);
    if (wait <= 0) flushProgress();
    // The last bytes before a pause are reported too, when the interval is over.
    else trailing ??= setTimeout(flushProgress, wait);
  };
  pullHttp({
    job: message.job,
    root: message.root,
    limiters: [nodeLimiter, new TokenBucket({ bytesPerSecond: message.perTransferBytesPerSecond })],
    timeoutMs: message.timeoutMs,
    signal: abort.signal,
    onProgress,
  })
    .then(
      (result) => {
        flushProgress();
        send({ type: 'result', id, result });
      },
      (error: unknown) => {
        flushProgress();
        send({
          type: 'thrown',
          id,
          name: error instanceof Error ? error.name : 'Error',
          message: error instanceof Error ? error.message : String(error),
        });
      },
    )
    .finally(() => {
      aborts.delete(id);
      limiters.delete(id);
    });
}

port.on('message', (message: ToReceiver) => {
  switch (message.type) {
    case 'pull':
      pull(message);
      return;
    case 'abort':
      aborts.get(message.id)?.abort(new Error(message.reason));
      return;
    case 'node-rate':
      nodeRate.bytesPerSecond = message.bytesPerSecond;
      nodeRate.burstBytes = message.burstBytes;
      return;
    case 'granted':
      limiters.get(message.id)?.granted(message.seq, message.error);
      return;
  }
});

send({ type: 'ready' });
