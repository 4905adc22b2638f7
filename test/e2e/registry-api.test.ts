import { randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../src/server/routes/instances.js';
import { type BackendName, type TestApp, testApp } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

afterAll(stopSharedPostgres);

type Backend = BackendName;
type Role = 'admin' | 'operator' | 'viewer';

type Env = TestApp;

interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

interface ImportAnswer {
  created: number;
  duplicate: number;
  malformed: number;
  lines: { line: number; text: string; status: string; message?: string }[];
}

describe.each<Backend>(['sqlite', 'postgres'])('registry API on %s', (backend) => {
  let env: Env;

  beforeEach(async () => {
    env = await testApp(backend);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const call = (
    method: NonNullable<InjectOptions['method']>,
    url: string,
    options: { as?: Role | null; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<LightMyRequestResponse> => {
    const as = options.as === undefined ? 'admin' : options.as;
    const headers: Record<string, string> = { ...options.headers };
    if (as !== null) headers.authorization = `Bearer ${env.tokens[as]}`;
    const payload =
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body);
    if (payload !== undefined && headers['content-type'] === undefined)
      headers['content-type'] = 'application/json';
    return env.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
  };
  const ok = async <T>(res: Promise<LightMyRequestResponse>, status = 200): Promise<T> => {
    const answer = await res;
    expect(answer.statusCode, answer.body).toBe(status);
    return answer.json<T>();
  };
  const fails = async (
    res: Promise<LightMyRequestResponse>,
    status: number,
    code: string,
  ): Promise<ErrorBody> => {
    const answer = await res;
    expect(answer.statusCode, answer.body).toBe(status);
    const body = answer.json<ErrorBody>();
    expect(body.error.code).toBe(code);
    return body;
  };

  const count = async (table: 'instances' | 'businesses' | 'backup_types' | 'clusters' | 'backups') =>
    Number(
      (
        await env.catalog.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const audit = (action: string) =>
    env.catalog.db.selectFrom('audit_log').selectAll().where('action', '=', action).orderBy('id').execute();

  const seed = async (games: string[] = ['31'], types: string[] = ['mysql']) => {
    for (const game_id of games)
      await ok(call('POST', '/api/v1/businesses', { body: { game_id, name: `Game ${game_id}` } }), 201);
    for (const name of types) await ok(call('POST', '/api/v1/backup-types', { body: { name } }), 201);
  };
  const createInstance = (body: Record<string, unknown>) =>
    ok<Instance>(
      call('POST', '/api/v1/instances', {
        as: 'operator',
        body: {
          name: 'mysql3306',
          server_id: '111111',
          type: 'mysql',
          instance: '3306',
          game_id: '31',
          ...body,
        },
      }),
      201,
    );
  const insertBackup = async (identity: { server_id: string; type: string; instance: string }) => {
    const row = await env.catalog.db
      .insertInto('backups')
      .values({
        report_id: randomUUID(),
        instance_id: null,
        ...identity,
        section: 'x',
        reported_game_id: '31',
        game_id: '31',
        cluster_id: 1,
        host_ip: '10.0.0.1',
        created_at: 1,
        finished_at: 2,
        received_at: 3,
        status: 'ok',
        log: '',
        output_tail: '',
        legality: 'legal',
        priority: 'normal',
        agent_version: '0.1.0',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  };
  const backupInstanceId = async (id: number) =>
    (
      await env.catalog.db
        .selectFrom('backups')
        .select('instance_id')
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
    ).instance_id;

  describe('authentication and roles', () => {
    it('answers 401 without a token or with an unknown one', async () => {
      await fails(call('GET', '/api/v1/businesses', { as: null }), 401, 'unauthenticated');
      await fails(
        env.app.inject({
          method: 'GET',
          url: '/api/v1/instances',
          headers: { authorization: 'Bearer ubt_nope' },
        }),
        401,
        'unauthenticated',
      );
      await fails(
        call('POST', '/api/v1/instances/import', { as: null, body: { text: '' } }),
        401,
        'unauthenticated',
      );
    });

    it('lets a viewer read but not write, and keeps deletes of businesses, types and clusters for admins', async () => {
      await seed();
      await ok(call('GET', '/api/v1/businesses', { as: 'viewer' }));
      await ok(call('GET', '/api/v1/instances', { as: 'viewer' }));
      await fails(
        call('POST', '/api/v1/businesses', { as: 'viewer', body: { game_id: '7', name: 'x' } }),
        403,
        'forbidden',
      );
      await fails(
        call('POST', '/api/v1/instances/import', { as: 'viewer', body: { text: '' } }),
        403,
        'forbidden',
      );
      await fails(call('DELETE', '/api/v1/businesses/31', { as: 'operator' }), 403, 'forbidden');
      await fails(call('DELETE', '/api/v1/backup-types/mysql', { as: 'operator' }), 403, 'forbidden');
      await fails(call('DELETE', '/api/v1/clusters/default', { as: 'operator' }), 403, 'forbidden');
      expect(await count('businesses')).toBe(1);
      const instance = await createInstance({});
      expect((await call('DELETE', `/api/v1/instances/${instance.id}`, { as: 'operator' })).statusCode).toBe(
        204,
      );
    });
  });

  describe('businesses', () => {
    it('creates, reads, lists, renames and deletes, keeping leading zeros, with audit entries', async () => {
      const created = await ok<{ id: number; game_id: string; name: string; created_at: string }>(
        call('POST', '/api/v1/businesses', { as: 'operator', body: { game_id: '031', name: 'Three One' } }),
        201,
      );
      expect(created).toMatchObject({ game_id: '031', name: 'Three One' });
      expect(Date.parse(created.created_at)).not.toBeNaN();
      await ok(call('POST', '/api/v1/businesses', { body: { game_id: '31', name: 'Other' } }), 201);
      expect(await ok(call('GET', '/api/v1/businesses/031', { as: 'viewer' }))).toEqual(created);
      const list = await ok<Page<{ game_id: string }>>(call('GET', '/api/v1/businesses?page_size=10'));
      expect(list).toMatchObject({ total: 2, page: 1, page_size: 10 });
      expect(list.items.map((b) => b.game_id)).toEqual(['031', '31']);

      const renamed = await ok(
        call('PATCH', '/api/v1/businesses/031', { as: 'operator', body: { name: 'Renamed' } }),
      );
      expect(renamed).toMatchObject({ id: created.id, game_id: '031', name: 'Renamed' });
      const moved = await ok(call('PATCH', '/api/v1/businesses/031', { body: { game_id: '0031' } }));
      expect(moved).toMatchObject({ id: created.id, game_id: '0031' });
      await fails(call('GET', '/api/v1/businesses/031'), 404, 'not_found');

      expect((await call('DELETE', '/api/v1/businesses/0031')).statusCode).toBe(204);
      await fails(call('DELETE', '/api/v1/businesses/0031'), 404, 'not_found');
      expect(await count('businesses')).toBe(1);

      const [create] = await audit('business.create');
      expect(create).toMatchObject({ actor: 'token:test-operator', subject: 'business:031' });
      expect(JSON.parse(create?.detail ?? '{}')).toEqual({ game_id: '031', name: 'Three One' });
      const updates = await audit('business.update');
      expect(JSON.parse(updates[0]?.detail ?? '{}')).toEqual({ name: { from: 'Three One', to: 'Renamed' } });
      expect(await audit('business.delete')).toHaveLength(1);
    });

    it('refuses a duplicate game_id and a business that instances still use', async () => {
      await seed(['31', '32']);
      const dup = await fails(
        call('POST', '/api/v1/businesses', { body: { game_id: '31', name: 'Again' } }),
        409,
        'duplicate',
      );
      expect(dup.error.message).toContain('"31"');
      await fails(call('PATCH', '/api/v1/businesses/32', { body: { game_id: '31' } }), 409, 'duplicate');
      await createInstance({ instance: '1' });
      await createInstance({ instance: '2' });
      const inUse = await fails(call('DELETE', '/api/v1/businesses/31'), 409, 'in_use');
      expect(inUse.error.message).toContain('2 instances');
      expect(inUse.error.details).toEqual({ instances: 2 });
      await fails(call('PATCH', '/api/v1/businesses/31', { body: { game_id: '33' } }), 409, 'in_use');
      expect(await ok(call('GET', '/api/v1/businesses/31'))).toMatchObject({ name: 'Game 31' });
    });

    it('validates fields precisely and refuses unknown fields', async () => {
      const unknown = await fails(
        call('POST', '/api/v1/businesses', { body: { game_id: '7', name: 'x', owner: 'me' } }),
        400,
        'invalid_request',
      );
      expect(unknown.error.message).toMatch(/owner/);
      const traversal = await fails(
        call('POST', '/api/v1/businesses', { body: { game_id: '../7', name: 'x' } }),
        400,
        'invalid_request',
      );
      expect(traversal.error.message).toMatch(/^body\.game_id: .*path separator/);
      await fails(
        call('POST', '/api/v1/businesses', { body: { game_id: 7, name: 'x' } }),
        400,
        'invalid_request',
      );
      await fails(call('PATCH', '/api/v1/businesses/7', { body: {} }), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/businesses?page=0'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/businesses?color=red'), 400, 'invalid_request');
      expect(await count('businesses')).toBe(0);
    });
  });

  describe('backup types', () => {
    it('creates, lists, updates and deletes; duplicate and in_use rules hold', async () => {
      await seed(['31'], []);
      const created = await ok(
        call('POST', '/api/v1/backup-types', {
          as: 'operator',
          body: { name: 'mysql', description: 'MySQL dumps' },
        }),
        201,
      );
      expect(created).toMatchObject({ name: 'mysql', description: 'MySQL dumps' });
      expect(await ok(call('POST', '/api/v1/backup-types', { body: { name: 'redis' } }), 201)).toMatchObject({
        description: '',
      });
      await fails(call('POST', '/api/v1/backup-types', { body: { name: 'mysql' } }), 409, 'duplicate');
      const list = await ok<Page<{ name: string }>>(call('GET', '/api/v1/backup-types', { as: 'viewer' }));
      expect(list.items.map((t) => t.name)).toEqual(['mysql', 'redis']);
      expect(list.total).toBe(2);

      await ok(
        call('PATCH', '/api/v1/backup-types/redis', { body: { name: 'redis-rdb', description: 'RDB' } }),
      );
      expect(await ok(call('GET', '/api/v1/backup-types/redis-rdb'))).toMatchObject({ description: 'RDB' });
      await fails(
        call('PATCH', '/api/v1/backup-types/redis-rdb', { body: { name: 'mysql' } }),
        409,
        'duplicate',
      );

      await createInstance({});
      const inUse = await fails(call('DELETE', '/api/v1/backup-types/mysql'), 409, 'in_use');
      expect(inUse.error.message).toContain('1 instance');
      await fails(call('PATCH', '/api/v1/backup-types/mysql', { body: { name: 'mariadb' } }), 409, 'in_use');
      await ok(call('PATCH', '/api/v1/backup-types/mysql', { body: { description: 'still editable' } }));
      expect((await call('DELETE', '/api/v1/backup-types/redis-rdb')).statusCode).toBe(204);
      expect(await count('backup_types')).toBe(1);
      expect((await audit('backup_type.create')).map((a) => a.subject)).toEqual([
        'backup_type:mysql',
        'backup_type:redis',
      ]);
    });
  });

  describe('clusters', () => {
    it('protects the default cluster and refuses deleting a cluster in use', async () => {
      await seed();
      await fails(call('DELETE', '/api/v1/clusters/default'), 409, 'protected');
      await fails(call('PATCH', '/api/v1/clusters/default', { body: { name: 'main' } }), 409, 'protected');
      expect(
        await ok(call('PATCH', '/api/v1/clusters/default', { body: { description: 'the fallback' } })),
      ).toMatchObject({ name: 'default', description: 'the fallback' });

      await ok(
        call('POST', '/api/v1/clusters', { as: 'operator', body: { name: 'east', description: 'Site A' } }),
        201,
      );
      await fails(call('POST', '/api/v1/clusters', { body: { name: 'east' } }), 409, 'duplicate');
      await fails(call('PATCH', '/api/v1/clusters/east', { body: { name: 'default' } }), 409, 'duplicate');
      const instance = await createInstance({ cluster: 'east' });
      expect(instance.cluster).toBe('east');
      const inUse = await fails(call('DELETE', '/api/v1/clusters/east'), 409, 'in_use');
      expect(inUse.error.details).toEqual({ instances: 1 });

      // Instances refer to a cluster by id, so a cluster in use can be renamed.
      await ok(call('PATCH', '/api/v1/clusters/east', { body: { name: 'east-1' } }));
      expect(await ok(call('GET', `/api/v1/instances/${instance.id}`))).toMatchObject({ cluster: 'east-1' });

      await ok(call('PATCH', `/api/v1/instances/${instance.id}`, { body: { cluster: 'default' } }));
      expect((await call('DELETE', '/api/v1/clusters/east-1')).statusCode).toBe(204);
      const list = await ok<Page<{ name: string }>>(call('GET', '/api/v1/clusters'));
      expect(list.items.map((c) => c.name)).toEqual(['default']);
    });
  });

  describe('instances', () => {
    it('creates with defaults, reads, updates and deletes, auditing each write', async () => {
      await seed(['31', '32'], ['mysql', 'redis']);
      const created = await createInstance({});
      expect(created).toMatchObject({
        name: 'mysql3306',
        server_id: '111111',
        type: 'mysql',
        instance: '3306',
        game_id: '31',
        cluster: 'default',
        priority: 'normal',
        schedule: null,
        interval_seconds: 3600,
        timezone: 'UTC',
        grace_seconds: 3000,
        retention_days: null,
        paused: false,
        muted_until: null,
        last_success_at: null,
        last_report_at: null,
        next_due_at: null,
      });
      expect(created.created_at).toBe(created.updated_at);
      expect(await ok(call('GET', `/api/v1/instances/${created.id}`, { as: 'viewer' }))).toEqual(created);

      const full = await createInstance({
        name: 'redis-main',
        type: 'redis',
        instance: '6379',
        game_id: '32',
        priority: 'critical',
        schedule: '30 3 * * *',
        timezone: 'Asia/Shanghai',
        interval_seconds: 86_400,
        grace_seconds: 600,
        retention_days: 14,
        paused: true,
      });
      expect(full).toMatchObject({
        schedule: '30 3 * * *',
        timezone: 'Asia/Shanghai',
        retention_days: 14,
        paused: true,
      });

      const patched = await ok<Instance>(
        call('PATCH', `/api/v1/instances/${created.id}`, {
          as: 'operator',
          body: {
            priority: 'high',
            schedule: '*/15 * * * *',
            paused: true,
            name: 'renamed',
            retention_days: 7,
          },
        }),
      );
      expect(patched).toMatchObject({
        priority: 'high',
        schedule: '*/15 * * * *',
        paused: true,
        name: 'renamed',
      });
      const moved = await ok<Instance>(
        call('PATCH', `/api/v1/instances/${created.id}`, {
          body: { instance: '3307', game_id: '32', schedule: null },
        }),
      );
      expect(moved).toMatchObject({ instance: '3307', game_id: '32', schedule: null, name: 'renamed' });

      const [update] = await audit('instance.update');
      expect(update?.subject).toBe(`instance:${created.id}`);
      expect(JSON.parse(update?.detail ?? '{}')).toMatchObject({
        priority: { from: 'normal', to: 'high' },
        paused: { from: false, to: true },
      });

      expect((await call('DELETE', `/api/v1/instances/${created.id}`, { as: 'operator' })).statusCode).toBe(
        204,
      );
      await fails(call('GET', `/api/v1/instances/${created.id}`), 404, 'not_found');
      await fails(call('DELETE', `/api/v1/instances/${created.id}`), 404, 'not_found');
      expect((await audit('instance.create')).map((a) => a.subject)).toEqual([
        `instance:${created.id}`,
        `instance:${full.id}`,
      ]);
      expect(await audit('instance.delete')).toHaveLength(1);
    });

    it('refuses unknown business, type and cluster, and a duplicate identity', async () => {
      await seed();
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ game_id: '99' }) }),
        400,
        'unknown_business',
      );
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ type: 'pgsql' }) }),
        400,
        'unknown_type',
      );
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ cluster: 'mars' }) }),
        400,
        'unknown_cluster',
      );
      const first = await createInstance({});
      const dup = await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ name: 'other' }) }),
        409,
        'duplicate',
      );
      expect(dup.error.details).toEqual({ id: first.id });
      expect(await count('instances')).toBe(1);
    });

    it('validates cron schedules, time zones, ranges and unknown fields precisely', async () => {
      await seed();
      const cron = await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ schedule: '61 * * * *' }) }),
        400,
        'invalid_request',
      );
      expect(cron.error.message).toMatch(/^body\.schedule: .*not a valid cron expression/);
      const tz = await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ timezone: 'Mars/Olympus' }) }),
        400,
        'invalid_request',
      );
      expect(tz.error.message).toMatch(/^body\.timezone: .*Mars\/Olympus/);
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ interval_seconds: 5 }) }),
        400,
        'invalid_request',
      );
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ priority: 'urgent' }) }),
        400,
        'invalid_request',
      );
      await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ schedule: '' }) }),
        400,
        'invalid_request',
      );
      const unknown = await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ back_dir: '/data' }) }),
        400,
        'invalid_request',
      );
      expect(unknown.error.message).toMatch(/back_dir/);
      const identity = await fails(
        call('POST', '/api/v1/instances', { body: instanceBody({ instance: 'a/b' }) }),
        400,
        'invalid_request',
      );
      expect(identity.error.message).toMatch(/^body\.instance: /);
      expect(await count('instances')).toBe(0);

      const created = await createInstance({ schedule: '0 3 * * *' });
      await fails(
        call('PATCH', `/api/v1/instances/${created.id}`, { body: { timezone: 'Nowhere/Land' } }),
        400,
        'invalid_request',
      );
      await fails(call('PATCH', `/api/v1/instances/${created.id}`, { body: {} }), 400, 'invalid_request');
      await fails(call('PATCH', '/api/v1/instances/abc', { body: { paused: true } }), 400, 'invalid_request');
      await fails(call('PATCH', '/api/v1/instances/999999', { body: { paused: true } }), 404, 'not_found');
      expect(
        await ok(call('PATCH', `/api/v1/instances/${created.id}`, { body: { timezone: 'Europe/Paris' } })),
      ).toMatchObject({ timezone: 'Europe/Paris', schedule: '0 3 * * *' });
    });

    it('leaves the row unchanged when a request fails', async () => {
      await seed(['31', '32']);
      const a = await createInstance({ instance: '1' });
      const b = await createInstance({ instance: '2' });
      // Valid fields next to a bad one change nothing.
      await fails(
        call('PATCH', `/api/v1/instances/${a.id}`, {
          body: { name: 'new', priority: 'high', interval_seconds: -1 },
        }),
        400,
        'invalid_request',
      );
      // Taking b's identity fails as a whole.
      await fails(
        call('PATCH', `/api/v1/instances/${a.id}`, { body: { instance: '2', name: 'new', game_id: '32' } }),
        409,
        'duplicate',
      );
      await fails(
        call('PATCH', `/api/v1/instances/${a.id}`, { body: { name: 'new', cluster: 'nope' } }),
        400,
        'unknown_cluster',
      );
      expect(await ok(call('GET', `/api/v1/instances/${a.id}`))).toEqual(a);
      expect(await ok(call('GET', `/api/v1/instances/${b.id}`))).toEqual(b);
      // A bulk delete with one bad id deletes nothing.
      await fails(
        call('POST', '/api/v1/instances/bulk-delete', { body: { ids: [a.id, -1] } }),
        400,
        'invalid_request',
      );
      expect(await count('instances')).toBe(2);
      expect(await audit('instance.update')).toHaveLength(0);
    });

    it('links earlier backups on create; deleting keeps the backups, unlinked', async () => {
      await seed();
      const earlier = await insertBackup({ server_id: '111111', type: 'mysql', instance: '3306' });
      const other = await insertBackup({ server_id: '111111', type: 'mysql', instance: '3307' });
      const instance = await createInstance({});
      expect(await backupInstanceId(earlier)).toBe(instance.id);
      expect(await backupInstanceId(other)).toBeNull();

      // Changing the identity links that identity's unlinked backups too.
      await ok(call('PATCH', `/api/v1/instances/${instance.id}`, { body: { instance: '3307' } }));
      expect(await backupInstanceId(other)).toBe(instance.id);

      expect((await call('DELETE', `/api/v1/instances/${instance.id}`)).statusCode).toBe(204);
      expect(await count('backups')).toBe(2);
      expect(await backupInstanceId(earlier)).toBeNull();
      expect(await backupInstanceId(other)).toBeNull();
    });

    it('bulk-deletes by id and counts what was deleted', async () => {
      await seed();
      const ids: number[] = [];
      for (const n of ['1', '2', '3']) ids.push((await createInstance({ instance: n })).id);
      const answer = await ok<{ deleted: number }>(
        call('POST', '/api/v1/instances/bulk-delete', {
          as: 'operator',
          body: { ids: [ids[0], ids[1], 999_999] },
        }),
      );
      expect(answer).toEqual({ deleted: 2 });
      expect(await count('instances')).toBe(1);
      await fails(
        call('POST', '/api/v1/instances/bulk-delete', { body: { ids: [] } }),
        400,
        'invalid_request',
      );
      const tooMany = Array.from({ length: 1001 }, (_, i) => i + 1);
      await fails(
        call('POST', '/api/v1/instances/bulk-delete', { body: { ids: tooMany } }),
        400,
        'invalid_request',
      );
      await fails(
        call('POST', '/api/v1/instances/bulk-delete', { as: 'viewer', body: { ids: [1] } }),
        403,
        'forbidden',
      );
      const [entry] = await audit('instance.bulk_delete');
      expect(JSON.parse(entry?.detail ?? '{}')).toEqual({ requested: 3, deleted: [ids[0], ids[1]] });
    });
  });

  describe('instance list', () => {
    it('pages by name then id, with the total', async () => {
      await seed();
      // 25 instances; names repeat so the id decides the order within a name.
      const created: Instance[] = [];
      for (let i = 0; i < 25; i += 1) {
        const name = `db-${String(Math.floor(i / 2)).padStart(2, '0')}`;
        created.push(await createInstance({ name, instance: String(3000 + 24 - i) }));
      }
      const expected = [...created]
        .sort((x, y) => x.name.localeCompare(y.name) || x.id - y.id)
        .map((i) => i.id);
      const page2 = await ok<Page<Instance>>(
        call('GET', '/api/v1/instances?page=2&page_size=10', { as: 'viewer' }),
      );
      expect(page2).toMatchObject({ total: 25, page: 2, page_size: 10 });
      expect(page2.items.map((i) => i.id)).toEqual(expected.slice(10, 20));
      const page3 = await ok<Page<Instance>>(call('GET', '/api/v1/instances?page=3&page_size=10'));
      expect(page3.items.map((i) => i.id)).toEqual(expected.slice(20));
      const page4 = await ok<Page<Instance>>(call('GET', '/api/v1/instances?page=4&page_size=10'));
      expect(page4).toMatchObject({ items: [], total: 25 });
      const defaults = await ok<Page<Instance>>(call('GET', '/api/v1/instances'));
      expect(defaults).toMatchObject({ page: 1, page_size: 50, total: 25 });
      expect(defaults.items).toHaveLength(25);
      await fails(call('GET', '/api/v1/instances?page_size=15'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/instances?page=0'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/instances?page=two'), 400, 'invalid_request');
    });

    it('filters by comma- and space-separated lists of each field, and by paused', async () => {
      await seed(['31', '32', '033'], ['mysql', 'redis']);
      await ok(call('POST', '/api/v1/clusters', { body: { name: 'east' } }), 201);
      const rows = [
        {
          name: 'a',
          server_id: 's1',
          type: 'mysql',
          instance: '3306',
          game_id: '31',
          cluster: 'default',
          paused: false,
        },
        {
          name: 'b',
          server_id: 's1',
          type: 'redis',
          instance: '6379',
          game_id: '32',
          cluster: 'east',
          paused: true,
        },
        {
          name: 'c',
          server_id: 's2',
          type: 'mysql',
          instance: '3306',
          game_id: '033',
          cluster: 'east',
          paused: false,
        },
        {
          name: 'd',
          server_id: 's3',
          type: 'mysql',
          instance: '3307',
          game_id: '31',
          cluster: 'default',
          paused: true,
        },
      ];
      for (const row of rows) await createInstance(row);
      const names = async (query: string) =>
        (await ok<Page<Instance>>(call('GET', `/api/v1/instances?${query}`, { as: 'viewer' }))).items.map(
          (i) => i.name,
        );
      const both = (list: string) => [
        encodeURIComponent(list.replaceAll(' ', ',')),
        encodeURIComponent(list),
      ];

      for (const list of both('a c')) expect(await names(`name=${list}`)).toEqual(['a', 'c']);
      for (const list of both('s1 s3')) expect(await names(`server_id=${list}`)).toEqual(['a', 'b', 'd']);
      for (const list of both('3306 6379')) expect(await names(`instance=${list}`)).toEqual(['a', 'b', 'c']);
      for (const list of both('redis nosuch')) expect(await names(`type=${list}`)).toEqual(['b']);
      for (const list of both('32 033')) expect(await names(`game_id=${list}`)).toEqual(['b', 'c']);
      for (const list of both('east')) expect(await names(`cluster=${list}`)).toEqual(['b', 'c']);
      expect(await names('cluster=default,east')).toEqual(['a', 'b', 'c', 'd']);
      expect(await names('paused=true')).toEqual(['b', 'd']);
      expect(await names('paused=false')).toEqual(['a', 'c']);
      expect(await names(`server_id=${encodeURIComponent('s1, s2')}&type=mysql&paused=false`)).toEqual([
        'a',
        'c',
      ]);
      expect(await names('server_id=s1&server_id=s3')).toEqual(['a', 'b', 'd']);
      expect(await names('game_id=33')).toEqual([]); // leading zeros matter
      const filtered = await ok<Page<Instance>>(call('GET', '/api/v1/instances?type=mysql&page_size=10'));
      expect(filtered.total).toBe(3);

      const bad = await fails(call('GET', '/api/v1/instances?server_id=s1,..'), 400, 'invalid_request');
      expect(bad.error.message).toMatch(/^querystring\.server_id\.1: /);
      await fails(call('GET', '/api/v1/instances?paused=yes'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/instances?name=%20,%20'), 400, 'invalid_request');
      await fails(call('GET', '/api/v1/instances?owner=me'), 400, 'invalid_request');
    });
  });

  describe('instance import', () => {
    it('imports 1,000 lines: 995 created, 3 malformed and 2 duplicates, listed with line numbers', async () => {
      await seed(['31', '32'], ['mysql', 'redis']);
      await createInstance({ name: 'pre', server_id: 'srv-007', type: 'mysql', instance: '3700' });
      const before = await count('instances');
      const linkedLater = await insertBackup({ server_id: 'srv-001', type: 'mysql', instance: '3001' });

      const entries: string[] = [];
      for (let i = 1; i <= 1000; i += 1) {
        const server = `srv-${String(i % 50).padStart(3, '0')}`;
        entries.push(
          `db-${i} ${server} ${i % 3 === 0 ? 'redis' : 'mysql'} ${3000 + i} ${i % 2 === 0 ? '31' : '32'}`,
        );
      }
      entries[9] = 'db-10 srv-010 mysql 3010'; // missing field
      entries[499] = 'db-500,../etc,mysql,3500,31'; // traversal, comma separated
      entries[799] = 'db-800 srv-000 mysql 3800 99'; // unknown business
      entries[599] = entries[19]?.replace('db-20', 'db-600-again') ?? ''; // repeats entry 20
      entries[699] = 'db-700 srv-007 mysql 3700 31'; // already registered
      // Line numbers count every line: a header comment and a blank line come first.
      const text = ['# name server_id type instance game_id', '', ...entries].join('\n');
      const lineOf = (entry: number) => entry + 2;

      const answer = await ok<ImportAnswer>(
        call('POST', '/api/v1/instances/import', { as: 'operator', body: { text } }),
      );
      expect({ created: answer.created, duplicate: answer.duplicate, malformed: answer.malformed }).toEqual({
        created: 995,
        duplicate: 2,
        malformed: 3,
      });
      expect(answer.lines.map(({ line, status }) => ({ line, status }))).toEqual([
        { line: lineOf(10), status: 'malformed' },
        { line: lineOf(500), status: 'malformed' },
        { line: lineOf(600), status: 'duplicate' },
        { line: lineOf(700), status: 'duplicate' },
        { line: lineOf(800), status: 'malformed' },
      ]);
      const byLine = new Map(answer.lines.map((l) => [l.line, l]));
      expect(byLine.get(lineOf(10))).toMatchObject({
        text: 'db-10 srv-010 mysql 3010',
        message: expect.stringMatching(/found 4/),
      });
      expect(byLine.get(lineOf(500))?.message).toMatch(/server_id/);
      expect(byLine.get(lineOf(800))?.message).toMatch(/unknown business/);
      expect(byLine.get(lineOf(600))?.message).toBe(`repeats line ${lineOf(20)}`);
      expect(byLine.get(lineOf(700))?.message).toMatch(/already registered/);

      expect((await count('instances')) - before).toBe(995);
      const imported = await ok<Page<Instance>>(
        call('GET', '/api/v1/instances?server_id=srv-001&instance=3001'),
      );
      expect(imported.items).toHaveLength(1);
      expect(imported.items[0]).toMatchObject({
        name: 'db-1',
        game_id: '32',
        cluster: 'default',
        priority: 'normal',
        interval_seconds: 3600,
        grace_seconds: 3000,
        timezone: 'UTC',
        paused: false,
      });
      expect(await backupInstanceId(linkedLater)).toBe(imported.items[0]?.id);

      const [entry] = await audit('instance.import');
      expect(entry?.actor).toBe('token:test-operator');
      expect(JSON.parse(entry?.detail ?? '{}')).toMatchObject({ created: 995, duplicate: 2, malformed: 3 });

      // The same import again: everything valid is now a duplicate.
      const again = await ok<ImportAnswer>(call('POST', '/api/v1/instances/import', { body: { text } }));
      expect(again).toMatchObject({ created: 0, duplicate: 997, malformed: 3 });
      expect(await count('instances')).toBe(before + 995);
    });

    it('accepts text/plain with commas and CRLF line ends', async () => {
      await seed();
      const text =
        'web1,srv-1,mysql,3306,31\r\n# comment\r\n\r\nweb2 , srv-2 , mysql , 3306 , 31\r\nbad line\r\n';
      const answer = await ok<ImportAnswer>(
        call('POST', '/api/v1/instances/import', {
          as: 'operator',
          body: text,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
        }),
      );
      expect(answer).toEqual({
        created: 2,
        duplicate: 0,
        malformed: 1,
        lines: [
          { line: 5, text: 'bad line', status: 'malformed', message: expect.stringMatching(/found 2/) },
        ],
      });
      const list = await ok<Page<Instance>>(call('GET', '/api/v1/instances'));
      expect(list.items.map((i) => [i.name, i.server_id])).toEqual([
        ['web1', 'srv-1'],
        ['web2', 'srv-2'],
      ]);
    });

    it('refuses unknown fields, non-text bodies and bodies over 4 MiB', async () => {
      await seed();
      const unknown = await fails(
        call('POST', '/api/v1/instances/import', { body: { text: 'a srv-1 mysql 1 31', dry_run: true } }),
        400,
        'invalid_request',
      );
      expect(unknown.error.message).toMatch(/^body/);
      const wrongType = await fails(
        call('POST', '/api/v1/instances/import', { body: { text: 5 } }),
        400,
        'invalid_request',
      );
      expect(wrongType.error.message).toMatch(/^body\.text: /);
      const big = `${'x'.repeat(80)}\n`.repeat(Math.ceil((4 * 1024 * 1024) / 81) + 10);
      await fails(
        call('POST', '/api/v1/instances/import', { body: big, headers: { 'content-type': 'text/plain' } }),
        413,
        'body_too_large',
      );
      // Between the app's 64 KiB default and 4 MiB is fine on this route, as JSON and as text.
      const lines = Array.from({ length: 3000 }, (_, i) => `name-${i} srv-${i} mysql ${i} 31`).join('\n');
      expect(lines.length).toBeGreaterThan(64 * 1024);
      const answer = await ok<ImportAnswer>(
        call('POST', '/api/v1/instances/import', { body: lines, headers: { 'content-type': 'text/plain' } }),
      );
      expect(answer.created).toBe(3000);
      // Other routes keep the default limit.
      await fails(
        call('POST', '/api/v1/businesses', { body: { game_id: '8', name: 'x'.repeat(70 * 1024) } }),
        413,
        'body_too_large',
      );
      expect(await count('instances')).toBe(3000);
    });
  });

  it('still documents the API (OpenAPI generation copes with the registry schemas)', async () => {
    const doc = await ok<{ paths: Record<string, unknown> }>(
      call('GET', '/api/v1/openapi.json', { as: null }),
    );
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/businesses',
        '/api/v1/businesses/{game_id}',
        '/api/v1/backup-types/{name}',
        '/api/v1/clusters',
        '/api/v1/instances',
        '/api/v1/instances/{id}',
        '/api/v1/instances/bulk-delete',
        '/api/v1/instances/import',
      ]),
    );
  });
});

function instanceBody(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    name: 'mysql3306',
    server_id: '111111',
    type: 'mysql',
    instance: '3306',
    game_id: '31',
    ...overrides,
  };
}
