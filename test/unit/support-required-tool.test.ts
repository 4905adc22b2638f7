import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { isAbsolute } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.js';
import { INSTALL_HINTS, requireTool } from '../support/required-tool.js';
import { makeTempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

describe('requireTool', () => {
  it('returns the absolute path of an installed command', () => {
    const sh = requireTool('sh', 'apt-get install -y dash');
    expect(isAbsolute(sh)).toBe(true);
    expect(existsSync(sh)).toBe(true);
  });

  it('throws, naming the command and how to install it, when the command is missing', () => {
    const hint = 'apt-get install -y --no-install-recommends definitely-not-a-package';
    expect(() => requireTool('definitely-not-a-command-xyz', hint)).toThrowError(
      `definitely-not-a-command-xyz is not installed: ${hint}`,
    );
  });

  it('has exact install hints for the tools the tests need', () => {
    expect(INSTALL_HINTS.rsync).toBe(
      'run "apt-get install -y --no-install-recommends rsync" (CI installs it in .ci/run)',
    );
    expect(INSTALL_HINTS.postgres).toContain('install -y --no-install-recommends postgresql"');
    expect(INSTALL_HINTS.mariadbd).toContain('mariadb-server');
    expect(Object.keys(INSTALL_HINTS).sort()).toEqual(
      ['b3sum', 'chromium', 'mariadbd', 'postgres', 'redis-server', 'rsync'].sort(),
    );
  });
});

describe('waitFor', () => {
  it('resolves with the first truthy value', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), {
      timeoutMs: 5_000,
      intervalMs: 1,
      what: 'the third call',
    });
    expect(value).toEqual({ calls: 3 });
  });

  it('times out naming what it waited for', async () => {
    await expect(
      waitFor(async () => false, { timeoutMs: 100, intervalMs: 10, what: 'a miracle' }),
    ).rejects.toThrow('timed out after 100ms waiting for a miracle');
  });

  it('includes the last error of a throwing probe', async () => {
    await expect(
      waitFor(
        () => {
          throw new Error('connection refused');
        },
        { timeoutMs: 50, intervalMs: 5, what: 'the server' },
      ),
    ).rejects.toThrow('timed out after 50ms waiting for the server; last error: connection refused');
  });

  it('keeps its deadline when a probe hangs', async () => {
    const started = Date.now();
    await expect(
      waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 100, what: 'a hung probe' }),
    ).rejects.toThrow('timed out after 100ms waiting for a hung probe');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('freePort and makeTempDir', () => {
  it('returns a port that can be bound', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('creates and removes a temp dir', async () => {
    const dir = await makeTempDir('ubackup-unit');
    expect(existsSync(dir.path)).toBe(true);
    await dir.cleanup();
    await dir.cleanup();
    expect(existsSync(dir.path)).toBe(false);
  });
});
