import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runRestore } from '../../src/restore/restore-command.js';
import { RESTORE_EXIT } from '../../src/restore/restore-error.js';
import { parseAt, parseRestoreFlags, type RestoreOptions } from '../../src/restore/restore-options.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

/**
 * `ubackup restore` end to end against one real HTTP server that answers the
 * plan API and serves the files (the node's own server is tested in
 * restore-server.test.ts, the whole cluster in test/e2e/restore.test.ts).
 */

function digestOf(bytes: Buffer): string {
  const hasher = new Blake3Hasher();
  hasher.update(bytes);
  return hasher.digest('hex');
}

interface Stored {
  backup_id: number;
  kind: 'full' | 'incremental';
  filename: string;
  content: Buffer;
  created_at: string;
}

const TOKEN = 'ubt_viewer';
const CHAIN: Stored[] = [
  {
    backup_id: 10,
    kind: 'full',
    filename: 'full-10.xb',
    content: randomBytes(300_000),
    created_at: '2026-11-20T01:00:00.000Z',
  },
  {
    backup_id: 11,
    kind: 'incremental',
    filename: 'inc-11.xb',
    content: randomBytes(200_000),
    created_at: '2026-11-20T02:00:00.000Z',
  },
  {
    backup_id: 12,
    kind: 'incremental',
    filename: 'inc 12 $(x).xb',
    content: randomBytes(100_000),
    created_at: '2026-11-20T03:00:00.000Z',
  },
];

class FakeServer {
  server: Server | null = null;
  port = 0;
  planQueries: URLSearchParams[] = [];
  planAnswer: (query: URLSearchParams) => { status: number; body: unknown } = () => ({
    status: 200,
    body: this.plan(),
  });
  serveFile: (stored: Stored, req: IncomingMessage, res: ServerResponse) => void = (stored, req, res) => {
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    const body = stored.content.subarray(start);
    res.writeHead(match ? 206 : 200, {
      'content-length': body.length,
      ...(match
        ? { 'content-range': `bytes ${start}-${stored.content.length - 1}/${stored.content.length}` }
        : {}),
    });
    res.end(body);
  };
  fileRequests: string[] = [];

  plan(skipped: Array<{ backup_id: number; reason: string }> = []) {
    const last = CHAIN[CHAIN.length - 1] as Stored;
    return {
      at: '2026-11-20T04:30:00.000Z',
      target: {
        backup_id: last.backup_id,
        kind: last.kind,
        created_at: last.created_at,
        filename: last.filename,
      },
      chain: CHAIN.map((s) => ({
        backup_id: s.backup_id,
        kind: s.kind,
        filename: s.filename,
        size: s.content.length,
        blake3: digestOf(s.content),
        created_at: s.created_at,
        node: 'node-a',
        path: `31/mysql/5001/3306/${s.filename}`,
        download: {
          url: `http://127.0.0.1:${this.port}/v1/stored/${s.backup_id}`,
          ticket: `ticket-${s.backup_id}`,
        },
      })),
      skipped,
    };
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/api/v1/restore-plan') {
        if (req.headers.authorization !== `Bearer ${TOKEN}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'bad token' } }));
          return;
        }
        this.planQueries.push(url.searchParams);
        const answer = this.planAnswer(url.searchParams);
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body));
        return;
      }
      const id = Number(/^\/v1\/stored\/(\d+)$/.exec(url.pathname)?.[1]);
      const stored = CHAIN.find((s) => s.backup_id === id);
      if (stored === undefined || req.headers.authorization !== `Bearer ticket-${id}`) {
        res.writeHead(403).end();
        return;
      }
      this.fileRequests.push(`${id} ${req.headers.range ?? 'all'}`);
      this.serveFile(stored, req, res);
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

function sink(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      text += chunk.toString('utf8');
      callback();
    },
  });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

let dir: TempDir;
let fake: FakeServer;

beforeEach(async () => {
  dir = await makeTempDir('restore-command');
  fake = new FakeServer();
  await fake.start();
});
afterEach(async () => {
  await fake.stop();
  await dir.cleanup();
});

function options(overrides: Partial<RestoreOptions> = {}): RestoreOptions {
  return {
    server: `http://127.0.0.1:${fake.port}`,
    token: TOKEN,
    serverId: '5001',
    type: 'mysql',
    instance: '3306',
    at: null,
    to: null,
    exec: null,
    dryRun: false,
    json: false,
    ...overrides,
  };
}

async function restore(overrides: Partial<RestoreOptions> = {}) {
  const out = sink();
  const err = sink();
  const code = await runRestore(
    options(overrides),
    { stdout: out.stream, stderr: err.stream, cwd: dir.path, env: process.env },
    { retryDelayMs: () => 10 },
  );
  return { code, stdout: out.text(), stderr: err.text() };
}

const DEFAULT_DIR = 'ubackup-restore-5001-mysql-3306-20261120T030000Z';

describe('ubackup restore', () => {
  it('downloads the chain in order into the default directory, verifies it and runs the hook with the files', async () => {
    const record = join(dir.path, 'hook.txt');
    const result = await restore({
      at: '2026-11-20T04:30:00.000Z',
      exec: `printf '%s\\n' "$UBACKUP_FILES" > ${record}; printf 'arg:%s\\n' >> ${record}`,
    });
    expect(result.code, result.stderr).toBe(RESTORE_EXIT.ok);
    expect(fake.planQueries[0]?.toString()).toBe(
      'server_id=5001&type=mysql&instance=3306&at=2026-11-20T04%3A30%3A00.000Z',
    );
    const target = join(dir.path, DEFAULT_DIR);
    const paths = CHAIN.map((s) => join(target, s.filename));
    for (const [i, s] of CHAIN.entries())
      expect((await readFile(paths[i] as string)).equals(s.content)).toBe(true);
    expect(await readFile(record, 'utf8')).toBe(
      `${paths.join('\n')}\n${paths.map((p) => `arg:${p}\n`).join('')}`,
    );
    expect(fake.fileRequests).toEqual(['10 all', '11 all', '12 all']);
    expect(result.stderr).toMatch(/restored backup 12 of 5001\/mysql\/3306 into/);
  });

  it('prints one JSON result with --json', async () => {
    const result = await restore({ json: true, to: 'out' });
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json).toMatchObject({
      ok: true,
      exit_code: 0,
      target_backup_id: 12,
      dir: join(dir.path, 'out'),
      hook: null,
      error: null,
    });
    expect(json.files.map((f: { backup_id: number; status: string }) => [f.backup_id, f.status])).toEqual([
      [10, 'downloaded'],
      [11, 'downloaded'],
      [12, 'downloaded'],
    ]);
    // Again: everything is there and verified, nothing is downloaded.
    const again = await restore({ json: true, to: 'out' });
    expect(JSON.parse(again.stdout).files.map((f: { status: string }) => f.status)).toEqual([
      'reused',
      'reused',
      'reused',
    ]);
    expect(fake.fileRequests).toHaveLength(3);
  });

  it('--dry-run prints the plan and downloads nothing', async () => {
    const result = await restore({ dryRun: true });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/1\. backup 10 \(full, 2026-11-20T01:00:00.000Z\) full-10.xb/);
    expect(result.stdout.trim().split('\n')).toEqual(
      CHAIN.map((s) => join(dir.path, DEFAULT_DIR, s.filename)),
    );
    expect(fake.fileRequests).toEqual([]);
    expect(await readdir(dir.path)).toEqual([]);
  });

  it('says which newer backups were skipped and why', async () => {
    fake.planAnswer = () => ({
      status: 200,
      body: fake.plan([
        { backup_id: 13, reason: 'backup 13 is unverified: scrub found a checksum mismatch' },
      ]),
    });
    const result = await restore({ dryRun: true });
    expect(result.stderr).toContain(
      'newer backups of 5001/mysql/3306 cannot be restored, so an older chain is used',
    );
    expect(result.stderr).toContain(
      'skipped backup 13: backup 13 is unverified: scrub found a checksum mismatch',
    );
  });

  it('exits 3 when there is no plan, 4 when the chain is broken, 2 for a refused token', async () => {
    fake.planAnswer = () => ({
      status: 404,
      body: { error: { code: 'plan_not_found', message: 'no backup' } },
    });
    expect((await restore()).code).toBe(RESTORE_EXIT.planNotFound);
    fake.planAnswer = () => ({
      status: 409,
      body: {
        error: { code: 'chain_broken', message: 'the base full 9 was deleted', details: { missing: [9] } },
      },
    });
    const broken = await restore({ json: true });
    expect(broken.code).toBe(RESTORE_EXIT.chainBroken);
    expect(broken.stderr).toContain('the base full 9 was deleted');
    expect(JSON.parse(broken.stdout).error).toEqual({
      code: 'chain_broken',
      message: 'the base full 9 was deleted',
      details: { missing: [9] },
    });
    expect((await restore({ token: 'wrong' })).code).toBe(RESTORE_EXIT.usage);
  });

  it('exits 6 when the server or a node cannot be reached, or a node has no address', async () => {
    const server = `http://127.0.0.1:${fake.port}`;
    await fake.stop();
    expect((await restore({ server })).code).toBe(RESTORE_EXIT.downloadFailed);
    await fake.start();
    fake.planAnswer = () => {
      const plan = fake.plan();
      (plan.chain[1] as { download: { url: string | null } }).download.url = null;
      return { status: 200, body: plan };
    };
    const result = await restore({ server });
    expect(result.code).toBe(RESTORE_EXIT.downloadFailed);
    expect(result.stderr).toContain('node node-a has no restore address');
  });

  it('exits 5 when a file does not verify, and removes its part', async () => {
    fake.serveFile = (stored, _req, res) => {
      const body = Buffer.from(stored.content);
      body[0] = (body[0] ?? 0) ^ 0xff;
      res.writeHead(200, { 'content-length': body.length }).end(body);
    };
    const result = await restore({ to: 'out', exec: 'true' });
    expect(result.code).toBe(RESTORE_EXIT.integrity);
    expect(await readdir(join(dir.path, 'out'))).toEqual([]);
    expect(result.stderr).toMatch(/full-10.xb failed verification: its BLAKE3 is/);
  });

  it('exits 6 after a cut that does not recover, and the next run resumes the part', async () => {
    let cuts = 0;
    const serve = fake.serveFile;
    fake.serveFile = (stored, req, res) => {
      if (stored.backup_id !== 11) return serve(stored, req, res);
      cuts += 1;
      res.writeHead(200, { 'content-length': stored.content.length });
      res.write(stored.content.subarray(0, 50_000), () => setTimeout(() => res.destroy(), 20));
    };
    const first = await restore({ to: 'out' });
    expect(first.code).toBe(RESTORE_EXIT.downloadFailed);
    expect(cuts).toBe(3);
    expect((await readdir(join(dir.path, 'out'))).sort()).toEqual(['full-10.xb', 'inc-11.xb.part']);
    fake.serveFile = serve;
    const second = await restore({ to: 'out', json: true });
    expect(second.code).toBe(0);
    expect(fake.fileRequests.at(-2)).toBe('11 bytes=50000-');
    const files = JSON.parse(second.stdout).files;
    expect(files[1]).toMatchObject({ status: 'downloaded', resumed_from: 50_000 });
  });

  it('exits 7 when the hook fails, and keeps the files', async () => {
    const result = await restore({ to: 'out', exec: 'exit 3;' });
    expect(result.code).toBe(RESTORE_EXIT.hookFailed);
    expect(result.stderr).toContain('the hook exited with status 3');
    expect((await readdir(join(dir.path, 'out'))).sort()).toEqual(CHAIN.map((s) => s.filename).sort());
  });

  it('refuses a plan whose file names are not safe path components', async () => {
    fake.planAnswer = () => {
      const plan = fake.plan();
      (plan.chain[0] as { filename: string }).filename = '../escape';
      return { status: 200, body: plan };
    };
    const result = await restore({ to: 'out' });
    expect(result.code).toBe(RESTORE_EXIT.unexpected);
    expect(result.stderr).toMatch(/not a restore plan: chain.0.filename/);
    await writeFile(join(dir.path, 'x'), '');
    expect(await readdir(dir.path)).toEqual(['x']);
  });
});

describe('restore flags', () => {
  const flags = {
    server: 'https://ubackup.example:8080',
    token: 't',
    serverId: '5001',
    type: 'mysql',
    instance: '3306',
  };

  it('accepts the documented command line', () => {
    expect(parseRestoreFlags({ ...flags, at: '2026-11-20T04:30:00+08:00', exec: 'sh restore.sh' })).toEqual({
      ...flags,
      at: '2026-11-19T20:30:00.000Z',
      to: null,
      exec: 'sh restore.sh',
      dryRun: false,
      json: false,
    });
  });

  it('refuses missing and bad flags with exit 2', () => {
    for (const bad of [
      { ...flags, server: undefined },
      { ...flags, server: 'ftp://x' },
      { ...flags, token: '' },
      { ...flags, serverId: '../x' },
      { ...flags, instance: undefined },
      { ...flags, at: 'yesterday' },
      { ...flags, exec: ' ' },
    ]) {
      expect(() => parseRestoreFlags(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ exitCode: RESTORE_EXIT.usage }),
      );
    }
    expect(parseAt('2026-11-20')).toBe('2026-11-20T00:00:00.000Z');
  });
});
