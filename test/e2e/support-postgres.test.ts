import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type PostgresHandle,
  sharedPostgres,
  startPostgres,
  stopSharedPostgres,
} from '../support/postgres.js';

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('startPostgres', () => {
  let server: PostgresHandle | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('starts a server, isolates databases, and stops cleanly', async () => {
    const started = Date.now();
    server = await startPostgres();
    const startupMs = Date.now() - started;
    console.info(`PostgreSQL started in ${startupMs}ms on port ${server.port}`);
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);

    const first = await server.createDatabase();
    const second = await server.createDatabase();
    expect(first).not.toBe(second);
    expect(first).toMatch(new RegExp(`^postgres://postgres@127\\.0\\.0\\.1:${server.port}/ub_[0-9a-f]+$`));

    await query(first, 'CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)');
    await query(first, "INSERT INTO note VALUES (1, 'hello')");
    expect(await query<{ body: string }>(first, 'SELECT body FROM note')).toEqual([{ body: 'hello' }]);
    expect(
      await query<{ n: number }>(
        second,
        "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'",
      ),
    ).toEqual([{ n: 0 }]);

    const named = await server.createDatabase('ub_named_db');
    expect(named.endsWith('/ub_named_db')).toBe(true);
    await expect(server.createDatabase('Robert"; DROP')).rejects.toThrow('must match');

    const tempDir = dirname(server.dataDir);
    expect(existsSync(tempDir)).toBe(true);
    const stopped = Date.now();
    await server.stop();
    console.info(`PostgreSQL stopped in ${Date.now() - stopped}ms`);
    await server.stop(); // idempotent

    expect(await connectError(server.port)).toBe('ECONNREFUSED');
    expect(existsSync(tempDir)).toBe(false);
  });
});

describe('sharedPostgres', () => {
  afterAll(stopSharedPostgres);

  it('starts one server per file and hands out fresh databases', async () => {
    const a = await sharedPostgres();
    const b = await sharedPostgres();
    expect(b.url).toBe(a.url);
    const url = await a.createDatabase();
    expect(await query<{ db: string }>(url, 'SELECT current_database() AS db')).toEqual([
      { db: url.slice(url.lastIndexOf('/') + 1) },
    ]);
  });

  it('stops the shared server and starts a new one on next use', async () => {
    const before = await sharedPostgres();
    await stopSharedPostgres();
    expect(await connectError(before.port)).toBe('ECONNREFUSED');
    expect(existsSync(dirname(before.dataDir))).toBe(false);
    const after = await sharedPostgres();
    expect(after.url).not.toBe(before.url);
    await after.createDatabase();
  });
});
