import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OUTPUT_TAIL_BYTES, OutputTail, runScript } from '../../src/agent/script-runner.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

let dir: TempDir;
const strays: number[] = [];

beforeEach(async () => {
  dir = await makeTempDir('ubackup-runner');
});

afterEach(async () => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await dir.cleanup();
});

/** Alive and not a zombie. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function readPid(file: string): Promise<number> {
  const pid = await waitFor(
    async () => {
      const text = await readFile(file, 'utf8').catch(() => '');
      const value = Number.parseInt(text.trim(), 10);
      return Number.isInteger(value) && value > 0 ? value : null;
    },
    { timeoutMs: 5_000, what: `a pid in ${file}` },
  );
  strays.push(pid);
  return pid;
}

describe('runScript', () => {
  it('reports exit code 0 and captures stdout and stderr', async () => {
    const result = await runScript({ script: 'echo out; echo err >&2; exit 0', timeoutSeconds: 10 });
    expect(result).toMatchObject({
      exitCode: 0,
      signal: null,
      timedOut: false,
      aborted: false,
      spawnError: null,
    });
    expect(result.outputTail).toContain('out\n');
    expect(result.outputTail).toContain('err\n');
    expect(result.finishedAtMs).toBeGreaterThanOrEqual(result.startedAtMs);
  });

  it('reports a nonzero exit code', async () => {
    const result = await runScript({ script: 'echo failing; exit 3', timeoutSeconds: 10 });
    expect(result.exitCode).toBe(3);
    expect(result.signal).toBeNull();
    expect(result.outputTail).toBe('failing\n');
  });

  it('runs the script with /bin/sh -c, stdin closed, in cwd with env', async () => {
    const result = await runScript({
      script: 'cat; pwd; echo "$UB_TEST_VAR"',
      timeoutSeconds: 10,
      cwd: dir.path,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', UB_TEST_VAR: 'a b;c' },
    });
    expect(result.exitCode).toBe(0);
    expect(result.outputTail).toBe(`${dir.path}\na b;c\n`);
  });

  it('records the start before spawning, from the given clock', async () => {
    let t = 1_000;
    const result = await runScript({ script: 'exit 0', timeoutSeconds: 10, now: () => (t += 5) });
    expect(result.startedAtMs).toBe(1_005);
    expect(result.finishedAtMs).toBe(1_010);
  });

  it('keeps exactly the last 4096 bytes of a 1 MB output', async () => {
    // 131072 lines of 8 bytes = 1 MiB.
    const script = `awk 'BEGIN { for (i = 0; i < 131072; i++) printf "%07d\\n", i }'`;
    const result = await runScript({ script, timeoutSeconds: 30 });
    expect(result.exitCode).toBe(0);
    let expected = '';
    for (let i = 131072 - OUTPUT_TAIL_BYTES / 8; i < 131072; i++)
      expected += `${String(i).padStart(7, '0')}\n`;
    expect(Buffer.byteLength(result.outputTail)).toBe(OUTPUT_TAIL_BYTES);
    expect(result.outputTail).toBe(expected);
  });

  it('reports the signal that killed the script', async () => {
    const result = await runScript({ script: 'kill -USR1 $$; sleep 5', timeoutSeconds: 10 });
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGUSR1');
    expect(result.timedOut).toBe(false);
  });

  it('on timeout kills the whole process group, grandchildren included', async () => {
    const pidFile = join(dir.path, 'child.pid');
    const result = await runScript({
      script: `sleep 300 & echo $! > '${pidFile}'; echo started; wait`,
      timeoutSeconds: 0.5,
    });
    const grandchild = await readPid(pidFile);
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(result.signal).toBe('SIGTERM');
    expect(result.outputTail).toBe('started\n');
    await waitFor(() => !isAlive(grandchild), {
      timeoutMs: 5_000,
      what: `grandchild ${grandchild} to be gone`,
    });
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace period', async () => {
    const pidFile = join(dir.path, 'child.pid');
    const result = await runScript({
      script: `trap '' TERM; sleep 300 & echo $! > '${pidFile}'; wait; wait; wait`,
      timeoutSeconds: 0.3,
      killGraceMs: 300,
    });
    const grandchild = await readPid(pidFile);
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    await waitFor(() => !isAlive(grandchild), {
      timeoutMs: 5_000,
      what: `grandchild ${grandchild} to be gone`,
    });
  });

  it('does not wait forever for a background child that keeps the output pipe open', async () => {
    const pidFile = join(dir.path, 'child.pid');
    const result = await runScript({
      script: `sleep 300 & echo $! > '${pidFile}'; echo done`,
      timeoutSeconds: 60,
    });
    const background = await readPid(pidFile);
    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    expect(result.outputTail).toBe('done\n');
    expect(result.finishedAtMs - result.startedAtMs).toBeLessThan(30_000);
    // Not the runner's business to kill it after a normal exit; the test cleans it up.
    expect(isAlive(background)).toBe(true);
  });

  it('kills the group when aborted', async () => {
    const controller = new AbortController();
    const pidFile = join(dir.path, 'child.pid');
    const running = runScript({
      script: `sleep 300 & echo $! > '${pidFile}'; wait`,
      timeoutSeconds: 60,
      signal: controller.signal,
    });
    const grandchild = await readPid(pidFile);
    controller.abort();
    const result = await running;
    expect(result).toMatchObject({ aborted: true, timedOut: false, exitCode: null, signal: 'SIGTERM' });
    await waitFor(() => !isAlive(grandchild), {
      timeoutMs: 5_000,
      what: `grandchild ${grandchild} to be gone`,
    });
  });

  it('reports a spawn failure instead of throwing', async () => {
    const result = await runScript({ script: 'exit 0', timeoutSeconds: 10, cwd: join(dir.path, 'missing') });
    expect(result.exitCode).toBeNull();
    expect(result.spawnError).toMatch(/ENOENT/);
  });
});

describe('OutputTail', () => {
  it('keeps the last bytes across chunks', () => {
    const tail = new OutputTail(8);
    tail.push(Buffer.from('abcdef'));
    tail.push(Buffer.from('ghij'));
    expect(tail.text()).toBe('cdefghij');
    tail.push(Buffer.from('0123456789'));
    expect(tail.text()).toBe('23456789');
  });

  it('drops a multi-byte character cut by the limit instead of showing U+FFFD', () => {
    const tail = new OutputTail(5);
    tail.push(Buffer.from('x中文')); // 1 + 3 + 3 bytes; the last 5 are 2 bytes of 中 + 文
    expect(tail.bytes().length).toBe(5);
    expect(tail.text()).toBe('文');
  });

  it('replaces invalid UTF-8 with U+FFFD', () => {
    const tail = new OutputTail(16);
    tail.push(Buffer.from([0x61, 0xff, 0x62]));
    expect(tail.text()).toBe('a\uFFFDb');
  });
});
