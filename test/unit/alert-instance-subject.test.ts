import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { instanceSubject, parseInstanceSubject } from '../../src/server/alerts/instance-subject.js';

describe('instance subjects', () => {
  it('are server_id/type/instance', () => {
    expect(instanceSubject('db-17', 'mysql', '3306')).toBe('db-17/mysql/3306');
    expect(parseInstanceSubject('db-17/mysql/3306')).toEqual({
      serverId: 'db-17',
      type: 'mysql',
      instance: '3306',
    });
  });

  it('property: a subject parses back into the parts it was made of', () => {
    const part = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('/'));
    fc.assert(
      fc.property(part, part, part, (serverId, type, instance) => {
        expect(parseInstanceSubject(instanceSubject(serverId, type, instance))).toEqual({
          serverId,
          type,
          instance,
        });
      }),
    );
  });

  it('a node’s or a cluster’s name is not an instance subject', () => {
    expect(parseInstanceSubject('node-a')).toBeNull();
    expect(parseInstanceSubject('default')).toBeNull();
    expect(parseInstanceSubject('a/b')).toBeNull();
    expect(parseInstanceSubject('a/b/c/d')).toBeNull();
    expect(parseInstanceSubject('a//c')).toBeNull();
    expect(parseInstanceSubject('/b/c')).toBeNull();
  });

  it('refuses a part that is empty or contains "/"', () => {
    expect(() => instanceSubject('', 'mysql', '3306')).toThrow(RangeError);
    expect(() => instanceSubject('db', 'my/sql', '3306')).toThrow('type "my/sql"');
    expect(() => instanceSubject('db', 'mysql', '')).toThrow(RangeError);
  });
});
