/**
 * The storage node's side of `bench/transfer.ts`, in its own process so that
 * its peak RSS and CPU time are its own. Pulls every job of `--jobs` (a JSON
 * array of LeasedJob) concurrently with pullHttp into `--root`, as the node
 * daemon does (a node-wide and a per-transfer TokenBucket, both unlimited),
 * and prints one JSON line (WorkerResult) on stdout.
 *
 *   node dist/bench/transfer-worker.js --jobs <file.json> --root <dir>
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pullHttp } from '../src/node/http-pull.js';
import { TokenBucket } from '../src/node/token-bucket.js';
import type { LeasedJob } from '../src/shared/node-protocol.js';
import { measureWork } from './worker-result.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string' },
    root: { type: 'string' },
  },
});
if (values.jobs === undefined || values.root === undefined) {
  console.error('usage: transfer-worker --jobs <file.json> --root <dir>');
  process.exit(2);
}
const jobs = JSON.parse(readFileSync(values.jobs, 'utf8')) as LeasedJob[];
const root = values.root;

const nodeBucket = new TokenBucket({ bytesPerSecond: 0 });
const work = measureWork();
const results = await Promise.all(
  jobs.map((job) =>
    pullHttp({
      job,
      root,
      limiters: [nodeBucket, new TokenBucket({ bytesPerSecond: 0 })],
      timeoutMs: 60_000,
      onProgress: () => undefined,
    }),
  ),
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
