import { readdirSync, readFileSync } from 'node:fs';

/** CPU time of the main thread, or of the other threads that share one name (`comm`): libuv's pool, V8's. */
export interface ThreadCpu {
  name: string;
  threads: number;
  userSeconds: number;
  systemSeconds: number;
}

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
  /** CPU time during the work per thread name, from /proc/self/task (empty where there is no /proc). */
  threads: ThreadCpu[];
}

const CLOCK_TICKS_PER_SECOND = 100;

/** utime and stime in clock ticks of every thread of this process, by thread id. */
function threadTicks(): Map<string, { name: string; user: number; system: number }> {
  const ticks = new Map<string, { name: string; user: number; system: number }>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // "<tid> (<comm>) <state> …": comm may hold spaces, so split after its closing parenthesis.
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
      // The main thread shares its name with every other thread of Node 20: call it so.
      const label = tid === String(process.pid) ? 'main thread' : `${name} threads`;
      ticks.set(tid, { name: label, user: Number(fields[11]), system: Number(fields[12]) });
    }
  } catch {
    // No /proc: no breakdown.
  }
  return ticks;
}

/** The CPU each thread used since `before`, summed per thread name, busiest first. */
function threadCpuSince(before: ReturnType<typeof threadTicks>): ThreadCpu[] {
  const byName = new Map<string, ThreadCpu>();
  for (const [tid, now] of threadTicks()) {
    const start = before.get(tid);
    const entry = byName.get(now.name) ?? { name: now.name, threads: 0, userSeconds: 0, systemSeconds: 0 };
    entry.threads += 1;
    entry.userSeconds += (now.user - (start?.user ?? 0)) / CLOCK_TICKS_PER_SECOND;
    entry.systemSeconds += (now.system - (start?.system ?? 0)) / CLOCK_TICKS_PER_SECOND;
    byName.set(now.name, entry);
  }
  return [...byName.values()].sort(
    (a, b) => b.userSeconds + b.systemSeconds - (a.userSeconds + a.systemSeconds),
  );
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
  const ticksStart = threadTicks();
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
        threads: threadCpuSince(ticksStart),
      };
      // Exit at once: nothing that is still open may delay the measurement.
      process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(0));
    },
  };
}
