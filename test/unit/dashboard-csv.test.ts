import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toCsv } from '../../web/src/csv.js';

/** A strict RFC 4180 reader, to read back what toCsv wrote. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i += 1;
      } else {
        field += c;
        i += 1;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
      i += 1;
    } else if (c === ',') {
      row.push(field);
      field = '';
      i += 1;
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i += 2;
    } else {
      if (c === '"' || c === '\n' || c === '\r') throw new Error(`bare ${JSON.stringify(c)} at ${i}`);
      field += c;
      i += 1;
    }
  }
  if (field !== '' || row.length > 0) throw new Error('the last line has no CRLF');
  return rows;
}

describe('toCsv', () => {
  it('writes a header and rows, quoting only what needs it', () => {
    expect(
      toCsv(
        ['day', 'business', 'GB'],
        [
          ['2026-11-27', 'Dragon, Realm', 1.5],
          ['2026-11-28', 'say "hi"', null],
        ],
      ),
    ).toBe('day,business,GB\r\n2026-11-27,"Dragon, Realm",1.5\r\n2026-11-28,"say ""hi""",\r\n');
  });

  it('keeps spreadsheets from running a field as a formula', () => {
    expect(toCsv(['name'], [['=HYPERLINK("x")'], ['+1'], ['-2'], ['@a'], ['a=b']])).toBe(
      `name\r\n"'=HYPERLINK(""x"")"\r\n'+1\r\n'-2\r\n'@a\r\na=b\r\n`,
    );
    expect(toCsv(['n'], [[-2]])).toBe('n\r\n-2\r\n');
  });

  it('reads back as the same table for any text (formula marks aside)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', ',', '"', '\r', '\n', ' ', '中', '=', '-') });
    fc.assert(
      fc.property(
        fc.array(text, { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(text, { minLength: 4, maxLength: 4 }), { maxLength: 5 }),
        (header, rows) => {
          const table = [header, ...rows.map((r) => r.slice(0, header.length))];
          const back = parseCsv(toCsv(table[0] as string[], table.slice(1)));
          const mark = (s: string) => (/^[=+\-@]/.test(s) ? `'${s}` : s);
          expect(back).toEqual(table.map((r) => r.map(mark)));
        },
      ),
    );
  });
});
