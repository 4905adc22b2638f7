import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BackupEvent,
  bucketStart,
  DAY_MS,
  HOUR_MS,
  queueEvent,
  ROLLUP_COUNTERS,
  type RollupIncrement,
  rollupIncrements,
  sumIncrements,
  sumQueueIncrements,
} from '../../src/server/stats/rollup-increments.js';
import { depthHistory, statsRange } from '../../src/server/stats/stats-range.js';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const facts = fc.record({
  created_at: fc.integer({ min: T0, max: T0 + 5 * DAY_MS }),
  game_id: fc.constantFrom('31', '32', 'g\u0000x'),
  type: fc.constantFrom('mysql', 'redis'),
});
const event: fc.Arbitrary<BackupEvent> = fc.oneof(
  facts.chain((f) =>
    fc.constantFrom('ok', 'failed').map((status) => ({ event: 'ingested' as const, status, ...f })),
  ),
  fc
    .tuple(facts, fc.nat(10_000_000), fc.constantFrom('node-a', 'node-b'), fc.nat(600_000))
    .map(([f, size, node, transferMs]) => ({ event: 'stored' as const, ...f, size, node, transferMs })),
  fc
    .tuple(facts, fc.nat(10_000_000), fc.constantFrom('node-a', 'node-b'))
    .map(([f, size, node]) => ({ event: 'deleted' as const, ...f, size, node })),
);

const keyOf = (r: RollupIncrement) => JSON.stringify([r.bucket, r.game_id, r.type, r.node]);

/** Applies increments one by one to a table, as a row-per-event upsert would. */
function applyOneByOne(rows: readonly RollupIncrement[]): Map<string, RollupIncrement> {
  const table = new Map<string, RollupIncrement>();
  for (const r of rows) {
    const seen = table.get(keyOf(r));
    if (!seen) table.set(keyOf(r), { ...r });
    else for (const c of ROLLUP_COUNTERS) seen[c] += r[c];
  }
  for (const [k, r] of table) if (ROLLUP_COUNTERS.every((c) => r[c] === 0)) table.delete(k);
  return table;
}

describe('rollup increments', () => {
  it('sums a batch to one row per key, equal to applying every event alone, in key order', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), fc.constantFrom(DAY_MS, HOUR_MS), (events, size) => {
        const batched = rollupIncrements(events, size);
        const keys = batched.map(keyOf);
        expect(new Set(keys).size).toBe(keys.length);
        const alone = applyOneByOne(events.flatMap((e) => rollupIncrements([e], size)));
        expect(new Map(batched.map((r) => [keyOf(r), r]))).toEqual(alone);
        const sorted = [...batched].sort(
          (a, b) =>
            a.bucket - b.bucket ||
            (a.game_id < b.game_id ? -1 : a.game_id > b.game_id ? 1 : 0) ||
            (a.type < b.type ? -1 : a.type > b.type ? 1 : 0) ||
            (a.node < b.node ? -1 : a.node > b.node ? 1 : 0),
        );
        expect(batched).toEqual(sorted);
        for (const r of batched) expect(r.bucket % size).toBe(0);
      }),
    );
  });

  it('does not depend on the order of the batch, and splitting a batch changes no total', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), fc.nat(), (events, cut) => {
        const reversed = rollupIncrements([...events].reverse(), DAY_MS);
        expect(reversed).toEqual(rollupIncrements(events, DAY_MS));
        const at = events.length === 0 ? 0 : cut % events.length;
        const split = sumIncrements([
          ...rollupIncrements(events.slice(0, at), DAY_MS),
          ...rollupIncrements(events.slice(at), DAY_MS),
        ]);
        expect(split).toEqual(rollupIncrements(events, DAY_MS));
      }),
    );
  });

  it('counts what each event means: ingest, store moves from node "", delete', () => {
    const f = { created_at: T0 + 5 * HOUR_MS + 7, game_id: '31', type: 'mysql' };
    const rows = rollupIncrements(
      [
        { event: 'ingested', status: 'ok', ...f },
        { event: 'ingested', status: 'failed', ...f },
        { event: 'stored', size: 100, node: 'node-a', transferMs: 2500, ...f },
        { event: 'deleted', size: 100, node: 'node-a', ...f },
      ],
      DAY_MS,
    );
    expect(rows).toEqual([
      {
        bucket: T0,
        game_id: '31',
        type: 'mysql',
        node: '',
        backups: 1,
        failures: 1,
        bytes: 0,
        transfer_ms: 0,
        transfers: 0,
        deleted: 0,
        deleted_bytes: 0,
      },
      {
        bucket: T0,
        game_id: '31',
        type: 'mysql',
        node: 'node-a',
        backups: 1,
        failures: 0,
        bytes: 100,
        transfer_ms: 2500,
        transfers: 1,
        deleted: 1,
        deleted_bytes: 100,
      },
    ]);
    expect(bucketStart(T0 + 5 * HOUR_MS + 7, HOUR_MS)).toBe(T0 + 5 * HOUR_MS);
  });

  it('leaves out keys whose increments cancel', () => {
    const f = { created_at: T0, game_id: '31', type: 'mysql' };
    const rows = rollupIncrements(
      [
        { event: 'ingested', status: 'ok', ...f },
        { event: 'stored', size: 0, node: 'node-a', transferMs: 0, ...f },
      ],
      DAY_MS,
    );
    expect(rows.map((r) => r.node)).toEqual(['node-a']);
  });

  it('sums queue events per minute and cluster', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: T0, max: T0 + 10 * 60_000 }),
            fc.constantFrom(1, 2),
            fc.constantFrom('enqueued' as const, 'done' as const, 'dead' as const),
          ),
          { maxLength: 50 },
        ),
        (raw) => {
          const rows = sumQueueIncrements(raw.map(([at, cluster, kind]) => queueEvent(at, cluster, kind)));
          const total = (kind: 'enqueued' | 'done' | 'dead') => rows.reduce((n, r) => n + r[kind], 0);
          for (const kind of ['enqueued', 'done', 'dead'] as const)
            expect(total(kind)).toBe(raw.filter(([, , k]) => k === kind).length);
          const keys = rows.map((r) => `${r.minute}/${r.cluster_id}`);
          expect(new Set(keys).size).toBe(keys.length);
          for (const r of rows) expect(r.minute % 60_000).toBe(0);
        },
      ),
    );
  });
});

describe('queue depth history', () => {
  it('replays forward from the depth at the first minute to the current depth', () => {
    fc.assert(
      fc.property(
        fc.nat(50),
        fc.array(fc.tuple(fc.nat(20), fc.nat(20), fc.nat(5)), { maxLength: 30 }),
        (start, steps) => {
          let depth = start;
          const flows = steps.map(([enqueued, done, dead], i) => {
            depth += enqueued - done - dead;
            return { minute: T0 + i * 60_000, enqueued, done, dead, after: depth };
          });
          const history = depthHistory(
            [...flows].reverse().map(({ after: _after, ...f }) => f),
            depth,
          );
          expect(history.map((m) => m.depth)).toEqual(flows.map((f) => f.after));
          expect(history.map((m) => m.minute)).toEqual(flows.map((f) => f.minute));
        },
      ),
    );
  });
});

describe('stats range', () => {
  const now = Date.parse('2026-11-27T04:00:00Z');
  const limits = { defaultDays: 30, maxDays: 400 };
  it('defaults to the last 30 UTC days, today included; a date as `to` includes that day', () => {
    expect(statsRange({}, now, limits)).toEqual({
      ok: true,
      range: { fromMs: Date.parse('2026-10-29T00:00:00Z'), toMs: Date.parse('2026-11-28T00:00:00Z') },
    });
    const day = Date.parse('2026-11-01T00:00:00Z');
    expect(statsRange({ from: { ms: day, day: true }, to: { ms: day, day: true } }, now, limits)).toEqual({
      ok: true,
      range: { fromMs: day, toMs: day + DAY_MS },
    });
  });
  it('refuses a reversed or too long range', () => {
    const day = Date.parse('2026-11-01T00:00:00Z');
    expect(statsRange({ from: { ms: day, day: false }, to: { ms: day, day: false } }, now, limits).ok).toBe(
      false,
    );
    expect(
      statsRange({ from: { ms: day - 400 * DAY_MS, day: true }, to: { ms: day, day: true } }, now, limits),
    ).toEqual({ ok: false, problem: 'the range is longer than 400 days' });
    expect(
      statsRange({ from: { ms: day - 399 * DAY_MS, day: true }, to: { ms: day, day: true } }, now, limits).ok,
    ).toBe(true);
  });
});
