import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ROLLUP_COUNTERS, type RollupCounts } from '../../src/server/stats/rollup-increments.js';
import { sumByKey, sumRows } from '../../src/server/stats/series-sums.js';
import { SharedReads } from '../../src/server/stats/shared-reads.js';

function deferred<T>() {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SharedReads', () => {
  it('runs one query for concurrent reads of a key, and a new one once it settled', async () => {
    const reads = new SharedReads();
    let runs = 0;
    const first = deferred<string>();
    const query = () => {
      runs += 1;
      return first.promise;
    };
    const a = reads.read('k', query);
    const b = reads.read('k', query);
    const other = reads.read('other', async () => 'x');
    expect(runs).toBe(1);
    expect(reads.size).toBe(2);
    first.resolve('rows');
    expect(await Promise.all([a, b, other])).toEqual(['rows', 'rows', 'x']);
    expect(reads.size).toBe(0);
    await reads.read('k', async () => {
      runs += 1;
      return 'again';
    });
    expect(runs).toBe(2);
  });

  it('hands a failure to every waiting reader and keeps nothing', async () => {
    const reads = new SharedReads();
    const failing = deferred<string>();
    const a = reads.read('k', () => failing.promise);
    const b = reads.read('k', () => Promise.resolve('never asked'));
    failing.reject(new Error('connection lost'));
    await expect(a).rejects.toThrow('connection lost');
    await expect(b).rejects.toThrow('connection lost');
    expect(reads.size).toBe(0);
    expect(await reads.read('k', async () => 'fresh')).toBe('fresh');
  });
});

const counts: fc.Arbitrary<RollupCounts> = fc.record({
  backups: fc.nat(1000),
  failures: fc.nat(100),
  bytes: fc.nat(1e12),
  transfer_ms: fc.nat(1e7),
  transfers: fc.nat(1000),
  deleted: fc.nat(10),
  deleted_bytes: fc.nat(1e9),
});

describe('series sums', () => {
  it('sums per key (ordered by key) and in all, and the two agree', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom('b', 'a', '10', '9', 'Z', ''), counts).map(([key, c]) => ({ key, ...c })),
        ),
        (rows) => {
          const byKey = sumByKey(rows);
          expect(byKey.map((r) => r.key)).toEqual([...new Set(rows.map((r) => r.key))].sort());
          const total = sumRows(rows);
          for (const c of ROLLUP_COUNTERS) {
            expect(total[c]).toBe(rows.reduce((n, r) => n + r[c], 0));
            expect(byKey.reduce((n, r) => n + r[c], 0)).toBe(total[c]);
            for (const k of byKey)
              expect(k[c]).toBe(rows.filter((r) => r.key === k.key).reduce((n, r) => n + r[c], 0));
          }
        },
      ),
    );
  });
});
