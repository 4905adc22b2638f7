import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CliDaemon, startCli } from '../support/cli-process.js';
import { freePort } from '../support/free-port.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

interface Item {
  status: string;
  kind: string | null;
  type: string;
  legality: string;
  file_name: string | null;
  error: string | null;
}

describe('ubackup demo', () => {
  let dir: TempDir | undefined;
  let demo: CliDaemon | undefined;
  afterEach(async () => {
    await demo?.stop('SIGKILL');
    await dir?.cleanup();
  });

  it('prints a working login and token, and its sample agent reports real files at once', async () => {
    dir = await makeTempDir('ubackup-demo-test');
    const port = await freePort();
    demo = startCli(['demo', '--listen', `127.0.0.1:${port}`, '--dir', dir.path, '--interval', '3600']);
    const banner = await waitFor(() => (demo?.output().includes('Press Ctrl-C') ? demo.output() : null), {
      timeoutMs: 60_000,
      what: 'the demo banner',
    });
    expect(banner).toContain(`Server:     http://127.0.0.1:${port}`);
    expect(banner).toContain(`Dashboard:  http://127.0.0.1:${port}/`);
    expect(banner).toMatch(/Login: +admin \/ \S{12}/);
    const password = /Login: +admin \/ (\S+)/.exec(banner)?.[1];
    const login = await fetch(`http://127.0.0.1:${port}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'admin', password }),
    });
    expect(login.status).toBe(200);
    expect(login.headers.get('set-cookie')).toMatch(/^ubackup_session=/);
    const token = /API token: +(ubt_\S+)/.exec(banner)?.[1];
    expect(token).toBeDefined();

    const items = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/backups?limit=50`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = (await res.json()) as { items: Item[] };
        return body.items.length >= 4 ? body.items : null;
      },
      { timeoutMs: 30_000, what: 'the first run of every sample instance' },
    );
    const byType = new Map(items.map((i) => [i.type, i]));
    expect(byType.get('mysql')).toMatchObject({ status: 'ok', kind: 'full', legality: 'legal' });
    expect(byType.get('redis')).toMatchObject({ status: 'ok', kind: 'single', legality: 'legal' });
    expect(byType.get('ssdb')).toMatchObject({ status: 'ok', legality: 'illegal' });
    // Every reported file exists on the sample host.
    const onHost = (await readdir(join(dir.path, 'host-backups'), { recursive: true })).map((p) =>
      p.split('/').pop(),
    );
    for (const item of items) if (item.file_name) expect(onHost).toContain(item.file_name);

    expect(await demo.stop('SIGTERM')).toBe(0);
  });
});
