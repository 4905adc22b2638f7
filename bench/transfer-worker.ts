/**
 * The storage node's side of `bench/transfer.ts`, in its own process so that
 * its peak RSS and CPU time are its own. Pulls every job of `--jobs` (a JSON
 * array of LeasedJob) concurrently into `--root` through a ReceiverPool, as
 * the node daemon does (its default receiver threads unless `--threads`; a
 * node-wide and a per-transfer bucket, both unlimited), and prints one JSON
 * line (WorkerResult) on stdout. The clock starts once the threads are up,
 * as they are in a running node.
 *
 *   node dist/bench/transfer-worker.js --jobs <file.json> --root <dir> [--threads N]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultReceiverThreads, ReceiverPool } from '../src/node/receiver-pool.js';
import { TokenBucket } from '../src/node/token-bucket.js';
import type { LeasedJob } from '../src/shared/node-protocol.js';
import { measureWork } from './worker-result.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string' },
    root: { type: 'string' },
    threads: { type: 'string' },
  },
});
if (values.jobs === undefined || values.root === undefined) {
  console.error('usage: transfer-worker --jobs <file.json> --root <dir> [--threads N]');
  process.exit(2);
}
const jobs = JSON.parse(readFileSync(values.jobs, 'utf8')) as LeasedJob[];
const root = values.root;
const threads = values.threads === undefined ? defaultReceiverThreads() : Number(values.threads);

const pool = new ReceiverPool({ threads, nodeBucket: new TokenBucket({ bytesPerSecond: 0 }) });
await pool.ready();
const work = measureWork();
const results = await Promise.all(
  jobs.map((job) => pool.pull({ job, root, perTransferBytesPerSecond: 0, timeoutMs: 60_000 })),
);

const failures: string[] = [];
let bytes = 0;
for (const [index, result] of results.entries()) {
  if (result.ok && !result.alreadyPresent && result.bytesTransferred === result.size) bytes += result.size;
  else
    failures.push(
      `job ${jobs[index]?.job_id}: ${result.ok ? 'nothing was transferred' : `${result.code}: ${result.error}`}`,
    );
}
work.finish({ bytes, failures });
