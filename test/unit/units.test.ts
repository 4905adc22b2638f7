import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDurationSeconds, parseSize, type SizeUnit } from '../../src/shared/units.js';

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

describe('parseSize', () => {
  it('reads a bare number in the default unit (the legacy reserve = 1000 is GB)', () => {
    expect(parseSize('1000', 'G')).toBe(1000 * GiB);
    expect(parseSize('62000', 'K')).toBe(62000 * KiB);
    expect(parseSize('512', 'B')).toBe(512);
    expect(parseSize('0', 'G')).toBe(0);
  });

  it.each<[string, SizeUnit, number]>([
    ['500M', 'G', 500 * MiB],
    ['2T', 'G', 2 * TiB],
    ['1.5G', 'K', 1.5 * GiB],
    ['62000K', 'G', 62000 * KiB],
    ['500m', 'G', 500 * MiB],
    ['2t', 'B', 2 * TiB],
    ['10GB', 'K', 10 * GiB],
    ['10GiB', 'K', 10 * GiB],
    ['10gib', 'K', 10 * GiB],
    ['10 MB', 'K', 10 * MiB],
    ['  7K  ', 'G', 7 * KiB],
    ['100B', 'G', 100],
    ['100b', 'G', 100],
    ['0.5K', 'G', 512],
  ])('parseSize(%j, %s) = %d', (text, unit, bytes) => {
    expect(parseSize(text, unit)).toBe(bytes);
  });

  it.each([
    '',
    '   ',
    'G',
    'abc',
    '-1',
    '-5G',
    '+5G',
    '1.2.3',
    '1e3',
    '.5G',
    '5.G',
    'Infinity',
    'NaN',
    '10X',
    '10GG',
    '10iB',
    '10 G B',
    '0x10',
    '1,000',
    '99999999999999999999T',
  ])('refuses %j', (text) => {
    expect(parseSize(text, 'G')).toBeNull();
  });

  it('property: parseSize(n + "M") is n MiB for every integer n', () => {
    fc.assert(
      // 2^33 MiB = 2^53 bytes is the first size past Number.MAX_SAFE_INTEGER.
      fc.property(fc.integer({ min: 0, max: 2 ** 33 - 1 }), (n) => {
        expect(parseSize(`${n}M`, 'G')).toBe(n * 1024 * 1024);
      }),
    );
    expect(parseSize(`${2 ** 33}M`, 'G')).toBeNull();
  });

  it('property: a bare integer is in the default unit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.constantFrom<SizeUnit>('B', 'K', 'M', 'G'),
        (n, unit) => {
          expect(parseSize(String(n), unit)).toBe(parseSize(`${n}${unit}`, 'B'));
        },
      ),
    );
  });

  it('property: the result is null or a non-negative safe integer', () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom<SizeUnit>('B', 'K', 'M', 'G', 'T'), (text, unit) => {
        const bytes = parseSize(text, unit);
        if (bytes !== null) {
          expect(Number.isSafeInteger(bytes)).toBe(true);
          expect(bytes).toBeGreaterThanOrEqual(0);
        }
      }),
    );
  });
});

describe('parseDurationSeconds', () => {
  it.each<[string, number]>([
    ['3600', 3600],
    ['0', 0],
    ['90s', 90],
    ['15m', 900],
    ['2h', 7200],
    ['1d', 86400],
    ['2H', 7200],
    [' 45 s ', 45],
    ['10 m', 600],
  ])('parseDurationSeconds(%j) = %d', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });

  it.each(['', 's', 'abc', '-5', '1.5h', '10w', '10ms', '1h30m', '1e3', '99999999999999999999d'])(
    'refuses %j',
    (text) => {
      expect(parseDurationSeconds(text)).toBeNull();
    },
  );

  it('property: parseDurationSeconds(n + "m") is 60 n seconds', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000_000 }), (n) => {
        expect(parseDurationSeconds(`${n}m`)).toBe(n * 60);
      }),
    );
  });
});
