import { describe, expect, it } from 'vitest';
import { rsyncModelValue } from '../../src/agent/config.js';
import { ReportSchema } from '../../src/shared/report.js';
import { sampleReport } from '../support/report-fixture.js';

describe('rsync_model', () => {
  it.each([
    ['backup/database_3306', 'backup/database_3306'],
    ['backup/database_3306/', 'backup/database_3306'],
    ['backup', 'backup'],
  ])('accepts %s as %s, which a report can carry', (raw, value) => {
    expect(rsyncModelValue(raw)).toEqual({ ok: true, value });
    expect(
      ReportSchema.safeParse({ ...sampleReport(), transport: 'rsync', rsync_model: value }).success,
    ).toBe(true);
  });

  it.each(['../etc', 'backup/../x', '-e sh', 'back up', 'a//b', '/abs', 'mod\u0000'])(
    'refuses %j with a clear message',
    (raw) => {
      const check = rsyncModelValue(raw);
      expect(check.ok).toBe(false);
      if (!check.ok) expect(check.message).toContain('is not module[/dir');
    },
  );
});
