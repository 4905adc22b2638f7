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

export interface WorkerResult {
  /** Wall time of all pulls, first request to last commit (fsyncs and sidecars included). */
  seconds: number;
  bytes: number;
  failures: string[];
  /** RSS once everything is loaded, before the first pull. */
  rssBeforeBytes: number;
  /** Peak RSS of the process (getrusage ru_maxrss). */
  maxRssBytes: number;
  /** VmHWM from /proc/self/status at the end (the same peak, as the kernel reports it), or null. */
  vmHwmBytes: number | null;
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
}

function vmHwm(): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

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
const rssBeforeBytes = process.memoryUsage().rss;
const cpuStart = process.cpuUsage();
const start = performance.now();
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
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);

const failures: string[] = [];
let bytes = 0;
for (const [index, result] of results.entries()) {
  if (result.ok && !result.alreadyPresent && result.bytesTransferred === result.size) bytes += result.size;
  else
    failures.push(
      `job ${jobs[index]?.job_id}: ${result.ok ? 'nothing was transferred' : `${result.code}: ${result.error}`}`,
    );
}
const output: WorkerResult = {
  seconds,
  bytes,
  failures,
  rssBeforeBytes,
  maxRssBytes: process.resourceUsage().maxRSS * 1024,
  vmHwmBytes: vmHwm(),
  cpuUserSeconds: cpu.user / 1e6,
  cpuSystemSeconds: cpu.system / 1e6,
};
// Exit at once: nothing that is still open may delay the measurement.
process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(0));
