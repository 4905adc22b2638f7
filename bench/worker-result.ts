import { readFileSync } from 'node:fs';

/** What a benchmark child process measured, printed as one JSON line on stdout. */
export interface WorkerResult {
  /** Wall time of the work, first request to last commit (fsyncs included). */
  seconds: number;
  bytes: number;
  failures: string[];
  /** RSS once everything is loaded, before the work. */
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

/** Starts the clock and the CPU counters; `finish` prints the result and exits at once. */
export function measureWork(): {
  finish(outcome: { bytes: number; failures: string[] }): void;
} {
  const rssBeforeBytes = process.memoryUsage().rss;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  return {
    finish({ bytes, failures }) {
      const seconds = (performance.now() - start) / 1000;
      const cpu = process.cpuUsage(cpuStart);
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
    },
  };
}
