import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type IncomingEntry, incomingJobId, staleIncoming } from '../../src/node/stale-incoming.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-27T12:00:00Z');

const entry = (name: string, kind: IncomingEntry['kind'], ageMs: number): IncomingEntry => ({
  name,
  kind,
  mtimeMs: NOW - ageMs,
  bytes: 1,
});

describe('incomingJobId', () => {
  it('knows only the names the node writes, of the kind it writes them', () => {
    expect(incomingJobId({ name: '42.part', kind: 'file' })).toBe(42);
    expect(incomingJobId({ name: '42.ubmeta.tmp', kind: 'file' })).toBe(42);
    expect(incomingJobId({ name: '42.rsync', kind: 'directory' })).toBe(42);
    for (const [name, kind] of [
      ['42.part', 'directory'],
      ['42.rsync', 'file'],
      ['42.part', 'other'],
      ['0.part', 'file'],
      ['042.part', 'file'],
      ['-1.part', 'file'],
      ['42.part.bak', 'file'],
      ['x42.part', 'file'],
      ['42', 'file'],
      ['.part', 'file'],
      ['12345678901234567.part', 'file'],
      ['notes.txt', 'file'],
    ] as const) {
      expect(incomingJobId({ name, kind }), `${name} (${kind})`).toBeNull();
    }
  });
});

describe('staleIncoming', () => {
  it('takes what is idle past the limit and not running; keeps the rest; names the unknown', () => {
    const entries = [
      entry('1.part', 'file', 2 * DAY),
      entry('2.part', 'file', 2 * DAY), // running again here
      entry('3.part', 'file', DAY - 1), // not idle long enough
      entry('4.rsync', 'directory', DAY),
      entry('5.ubmeta.tmp', 'file', 3 * DAY),
      entry('keep-me.txt', 'file', 9 * DAY),
    ];
    const { stale, unknown } = staleIncoming(entries, new Set([2]), NOW, DAY);
    expect(stale.map((e) => e.name)).toEqual(['1.part', '4.rsync', '5.ubmeta.tmp']);
    expect(unknown.map((e) => e.name)).toEqual(['keep-me.txt']);
  });

  it('never takes a running job, a fresh entry or a name it does not know; takes every other', () => {
    const name = fc.oneof(
      fc
        .tuple(fc.integer({ min: 1, max: 50 }), fc.constantFrom('.part', '.ubmeta.tmp', '.rsync'))
        .map(([id, s]) => `${id}${s}`),
      fc.string({ maxLength: 12 }),
    );
    const arbitraryEntry = fc.record({
      name,
      kind: fc.constantFrom<IncomingEntry['kind']>('file', 'directory', 'other'),
      mtimeMs: fc.integer({ min: NOW - 5 * DAY, max: NOW + DAY }),
      bytes: fc.nat(),
    });
    fc.assert(
      fc.property(
        fc.array(arbitraryEntry, { maxLength: 30 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 50 }), { maxLength: 10 }),
        fc.integer({ min: 0, max: 3 * DAY }),
        (entries, busy, maxIdle) => {
          const busySet = new Set(busy);
          const { stale, unknown } = staleIncoming(entries, busySet, NOW, maxIdle);
          for (const e of entries) {
            const id = incomingJobId(e);
            const expected = id !== null && !busySet.has(id) && NOW - e.mtimeMs >= maxIdle;
            expect(stale.includes(e)).toBe(expected);
            expect(unknown.includes(e)).toBe(id === null);
          }
        },
      ),
    );
  });
});
