import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ImportLine, parseImportLine } from '../../src/server/instance-import-line.js';

const good = (instance: Partial<Record<string, string>> = {}): ImportLine => ({
  kind: 'instance',
  instance: {
    name: 'mysql-31',
    server_id: 'srv-0042',
    type: 'mysql',
    instance: '3306',
    game_id: '031',
    ...instance,
  },
});

function malformedMessage(text: string): string {
  const parsed = parseImportLine(text);
  if (parsed.kind !== 'malformed') throw new Error(`expected malformed, got ${JSON.stringify(parsed)}`);
  return parsed.message;
}

describe('parseImportLine', () => {
  it('reads name server_id type instance game_id separated by spaces or tabs, keeping leading zeros', () => {
    expect(parseImportLine('mysql-31 srv-0042 mysql 3306 031')).toEqual(good());
    expect(parseImportLine('  mysql-31\tsrv-0042   mysql\t\t3306 031  ')).toEqual(good());
    expect(parseImportLine('mysql-31 srv-0042 mysql 3306 031\r')).toEqual(good());
  });

  it('accepts commas, with or without whitespace around them, and mixed separators', () => {
    expect(parseImportLine('mysql-31,srv-0042,mysql,3306,031')).toEqual(good());
    expect(parseImportLine('mysql-31 , srv-0042,  mysql ,3306,031')).toEqual(good());
    expect(parseImportLine('mysql-31,srv-0042 mysql\t3306, 031')).toEqual(good());
  });

  it('keeps non-ASCII and dotted names', () => {
    expect(parseImportLine('游戏库 db.example.com redis 6379.a 7')).toEqual({
      kind: 'instance',
      instance: {
        name: '游戏库',
        server_id: 'db.example.com',
        type: 'redis',
        instance: '6379.a',
        game_id: '7',
      },
    });
  });

  it('refuses extra and missing fields, naming the count', () => {
    expect(malformedMessage('a srv mysql 3306 31 extra')).toMatch(/expected 5 fields .* found 6/);
    expect(malformedMessage('a srv mysql 3306')).toMatch(/expected 5 fields .* found 4/);
    expect(malformedMessage('lonely')).toMatch(/found 1/);
  });

  it('refuses an empty field between commas instead of shifting the columns', () => {
    expect(malformedMessage('a,,mysql,3306,31')).toBe('field 2 (server_id) is empty');
    expect(malformedMessage('a,srv,mysql,3306,')).toBe('field 5 (game_id) is empty');
  });

  it('refuses path traversal and separators in server_id', () => {
    expect(malformedMessage('a ../etc mysql 3306 31')).toMatch(/^field 2 \(server_id\): .*path separator/);
    expect(malformedMessage('a .. mysql 3306 31')).toMatch(/^field 2 \(server_id\): .*"\." or "\.\."/);
    expect(malformedMessage('a srv\\x mysql 3306 31')).toMatch(/field 2 \(server_id\)/);
    expect(malformedMessage('a srv mysql ../../x 31')).toMatch(/^field 4 \(instance\)/);
  });

  it('refuses an instance of 256 bytes (the path component limit is 255) and too-long fields', () => {
    expect(malformedMessage(`a srv mysql ${'i'.repeat(256)} 31`)).toMatch(
      /^field 4 \(instance\): .*255 bytes/,
    );
    // 255 bytes is a valid component, but the instance field holds at most 128 characters.
    expect(malformedMessage(`a srv mysql ${'i'.repeat(129)} 31`)).toMatch(/^field 4 \(instance\)/);
    expect(parseImportLine(`a srv mysql ${'i'.repeat(128)} 31`).kind).toBe('instance');
    expect(malformedMessage(`a ${'s'.repeat(65)} mysql 3306 31`)).toMatch(/^field 2 \(server_id\)/);
    expect(malformedMessage(`${'n'.repeat(129)} srv mysql 3306 31`)).toMatch(/^field 1 \(name\)/);
  });

  it('refuses control characters', () => {
    expect(malformedMessage('a srv my\u0001sql 3306 31')).toMatch(/^field 3 \(type\): .*control/);
  });

  it('skips blank lines and comments', () => {
    for (const line of ['', '   ', '\t', '\r', '# a comment', '   # indented comment a b c d e', '#']) {
      expect(parseImportLine(line)).toEqual({ kind: 'skip' });
    }
  });

  it('parses any 5 safe tokens joined by spaces back to the same fields', () => {
    const unicodeSafe = fc.string({
      unit: fc.constantFrom(...'abcXYZ019_-.+@:=é中ü'.split('')),
      minLength: 1,
      maxLength: 40,
    });
    const token = unicodeSafe.filter((t) => t !== '.' && t !== '..' && !t.startsWith('#'));
    fc.assert(
      fc.property(
        fc.tuple(token, token, token, token, token),
        fc.constantFrom(' ', '\t', '  ', ' \t '),
        ([name, server_id, type, instance, game_id], separator) => {
          const line = [name, server_id, type, instance, game_id].join(separator);
          expect(parseImportLine(line)).toEqual({
            kind: 'instance',
            instance: { name, server_id, type, instance, game_id },
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});
