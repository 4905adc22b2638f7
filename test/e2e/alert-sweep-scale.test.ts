import { afterAll, describe, expect, it } from 'vitest';
import type { CatalogDb } from '../../src/catalog/database.js';
import type { NewInstance } from '../../src/catalog/schema.js';
import { inBatches } from '../../src/catalog/statement-batches.js';
import { type AlertSweepSettings, sweepAlerts } from '../../src/server/alerts/alert-sweep.js';
import { instanceSubject } from '../../src/server/alerts/instance-subject.js';
import { BACKENDS, freshCatalog } from '../support/catalog-backends.js';
import { stopSharedPostgres } from '../support/postgres.js';

/**
 * The alert sweep at fleet size: 200,000 registered instances of which 2,000
 * are overdue at a frozen `now`. One pass must open exactly those 2,000
 * `overdue` alerts (silenced and just-due instances stay quiet), a second pass
 * must change nothing, and a success for half of them must resolve exactly
 * those alerts on the next pass.
 */

afterAll(stopSharedPostgres);

const NOW = Date.parse('2026-06-01T12:00:00.000Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const INSTANCES = 200_000;
/** One row in each SLOT consecutive rows is overdue: 2,000 of 200,000, spread over the id range. */
const SLOT = 100;
const DUE = INSTANCES / SLOT;
const INSERT_ROWS = 500;
const BUSINESSES = 40;
const SETTINGS: AlertSweepSettings = { heartbeatSeconds: 30, backlogSeconds: 3600 };

type Kind = 'due' | 'paused' | 'muted' | 'at_now' | 'future';

/** What row `i` is: overdue, silenced while past due, due exactly at NOW, or due later. */
function kindOf(i: number): Kind {
  const slot = i % SLOT;
  const group = Math.floor(i / SLOT);
  if (slot === 0) return 'due';
  if (slot === 1 && group < 100) return 'paused';
  if (slot === 1 && group < 200) return 'muted';
  if (slot === 1 && group < 210) return 'at_now';
  return 'future';
}

function identity(i: number): { server_id: string; type: string; instance: string } {
  return {
    server_id: `host${Math.floor(i / 8)}`,
    type: i % 16 < 8 ? 'mysql' : 'redis',
    instance: String(3306 + (i % 8)),
  };
}

function instanceRow(i: number, clusterId: number): NewInstance {
  const kind = kindOf(i);
  const group = Math.floor(i / SLOT);
  let nextDueAt: number;
  let paused = 0;
  let mutedUntil: number | null = null;
  switch (kind) {
    case 'due':
      // Half of them late by exactly 1 ms, the rest by up to ~60 days.
      nextDueAt = group % 2 === 0 ? NOW - 1 : NOW - (group % 60) * DAY - 1000 * group - 1;
      // Some were muted, and the mute has ended (exactly at NOW, or before): they count.
      if (group % 50 === 1) mutedUntil = NOW;
      if (group % 50 === 3) mutedUntil = NOW - HOUR;
      break;
    case 'paused':
      nextDueAt = group % 2 === 0 ? NOW - 1 : NOW - 7 * DAY;
      paused = 1;
      break;
    case 'muted':
      nextDueAt = group % 2 === 0 ? NOW - 1 : NOW - 7 * DAY;
      mutedUntil = group % 2 === 0 ? NOW + 1 : NOW + DAY;
      break;
    case 'at_now':
      nextDueAt = NOW;
      break;
    case 'future':
      // Within one interval + grace of the last success, which is then never in the future.
      nextDueAt = NOW + 1 + ((i * 7919) % 6_000_000);
      break;
  }
  // Interval schedule (no cron), never reported: schedule, retention and last report stay null.
  return {
    ...identity(i),
    name: `instance ${i}`,
    game_id: String(i % BUSINESSES),
    cluster_id: clusterId,
    priority: 'normal',
    interval_seconds: 3600,
    timezone: 'UTC',
    grace_seconds: 3000,
    paused,
    muted_until: mutedUntil,
    next_due_at: nextDueAt,
    last_success_at: nextDueAt - 6_600_000,
    created_at: NOW - 90 * DAY,
    updated_at: NOW - 90 * DAY,
  };
}

async function seed(db: CatalogDb): Promise<void> {
  const cluster = await db
    .selectFrom('clusters')
    .select('id')
    .where('name', '=', 'default')
    .executeTakeFirstOrThrow();
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('businesses')
      .values(
        Array.from({ length: BUSINESSES }, (_, n) => ({
          game_id: String(n),
          name: `business ${n}`,
          created_at: NOW - 90 * DAY,
        })),
      )
      .execute();
    for (let start = 0; start < INSTANCES; start += INSERT_ROWS) {
      const rows: NewInstance[] = [];
      for (let i = start; i < Math.min(INSTANCES, start + INSERT_ROWS); i += 1)
        rows.push(instanceRow(i, cluster.id));
      await trx.insertInto('instances').values(rows).execute();
    }
  });
}

function subjectOf(i: number): string {
  const { server_id, type, instance } = identity(i);
  return instanceSubject(server_id, type, instance);
}

async function openOverdueSubjects(db: CatalogDb): Promise<string[]> {
  const rows = await db
    .selectFrom('alerts')
    .select('subject')
    .where('type', '=', 'overdue')
    .where('state', '<>', 'resolved')
    .execute();
  return rows.map((r) => r.subject).sort();
}

describe.each(BACKENDS)('alert sweep over 200,000 instances on %s', (backend) => {
  it('opens exactly the overdue alerts, is idempotent, and resolves the recovered ones', async () => {
    const fresh = await freshCatalog(backend);
    try {
      const { db } = fresh.catalog;
      await seed(db);
      const counted = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(counted.n)).toBe(INSTANCES);

      const dueRows: number[] = [];
      for (let i = 0; i < INSTANCES; i += 1) if (kindOf(i) === 'due') dueRows.push(i);
      expect(dueRows).toHaveLength(DUE);
      const expected = dueRows.map(subjectOf).sort();

      // Pass 1: every overdue instance opens one alert, nothing else does.
      const first = await sweepAlerts(db, NOW, SETTINGS);
      expect(first).toEqual({ reportsSeen: 0, dueTimesComputed: 0, opened: DUE, resolved: 0 });
      expect(await openOverdueSubjects(db)).toEqual(expected);
      const otherTypes = await db
        .selectFrom('alerts')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('type', '<>', 'overdue')
        .executeTakeFirstOrThrow();
      expect(Number(otherTypes.n)).toBe(0);
      const events = await db
        .selectFrom('alert_events')
        .innerJoin('alerts', 'alerts.id', 'alert_events.alert_id')
        .select(['alerts.subject', 'alert_events.kind', 'alert_events.at'])
        .execute();
      expect(events).toHaveLength(DUE);
      expect(new Set(events.map((e) => e.subject)).size).toBe(DUE);
      expect(events.every((e) => e.kind === 'opened' && e.at === NOW)).toBe(true);

      // Pass 2 at the same time: nothing changes.
      const second = await sweepAlerts(db, NOW, SETTINGS);
      expect(second).toEqual({ reportsSeen: 0, dueTimesComputed: 0, opened: 0, resolved: 0 });
      expect(await openOverdueSubjects(db)).toEqual(expected);

      // A success for every other overdue instance: as ingest stores it, newest success set and due time cleared.
      const recovered = dueRows.filter((_, n) => n % 2 === 0);
      const successAt = NOW - 60_000;
      const pastDue = await db
        .selectFrom('instances')
        .select(['id', 'server_id', 'type', 'instance'])
        .where('next_due_at', '<', NOW)
        .execute();
      const idOf = new Map(pastDue.map((r) => [instanceSubject(r.server_id, r.type, r.instance), r.id]));
      const recoveredIds = recovered.map((i) => idOf.get(subjectOf(i)) ?? -1);
      await db.transaction().execute(async (trx) => {
        for (const ids of inBatches(recoveredIds, INSERT_ROWS)) {
          await trx
            .updateTable('instances')
            .set({ last_success_at: successAt, next_due_at: null, updated_at: NOW })
            .where('id', 'in', ids)
            .execute();
        }
      });

      const third = await sweepAlerts(db, NOW, SETTINGS);
      expect(third).toEqual({
        reportsSeen: 0,
        dueTimesComputed: recovered.length,
        opened: 0,
        resolved: recovered.length,
      });
      const stillOpen = new Set(await openOverdueSubjects(db));
      expect([...stillOpen].sort()).toEqual(
        dueRows
          .filter((_, n) => n % 2 === 1)
          .map(subjectOf)
          .sort(),
      );
      const resolvedRows = await db
        .selectFrom('alerts')
        .select(['subject', 'resolved_at', 'resolved_by'])
        .where('state', '=', 'resolved')
        .execute();
      expect(resolvedRows.map((r) => r.subject).sort()).toEqual(recovered.map(subjectOf).sort());
      expect(resolvedRows.every((r) => r.resolved_at === NOW && r.resolved_by === 'system')).toBe(true);
      const resolvedEvents = await db
        .selectFrom('alert_events')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('kind', '=', 'resolved')
        .executeTakeFirstOrThrow();
      expect(Number(resolvedEvents.n)).toBe(recovered.length);
      const dueLater = await db
        .selectFrom('instances')
        .select((eb) => eb.fn.min('next_due_at').as('earliest'))
        .where('last_success_at', '=', successAt)
        .executeTakeFirstOrThrow();
      expect(Number(dueLater.earliest)).toBeGreaterThan(NOW);
    } finally {
      await fresh.cleanup();
    }
  });
});
