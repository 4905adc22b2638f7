import { randomUUID } from 'node:crypto';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, spoolFileName } from '../../src/agent/spool.js';
import { type Report, ReportSchema } from '../../src/shared/report.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

let dir: TempDir;

beforeEach(async () => {
  dir = await makeTempDir('ubackup-spool');
});

afterEach(async () => {
  await dir.cleanup();
});

function report(createdAtMs: number, overrides: Partial<Report> = {}): Report {
  return ReportSchema.parse({
    report_id: randomUUID(),
    server_id: '111111',
    game_id: '31',
    type: 'mysql',
    instance: '3306',
    section: 'mysql3306',
    status: 'failed',
    kind: null,
    filename: null,
    size: null,
    blake3: null,
    base_filename: null,
    base_created_at: null,
    created_at: new Date(createdAtMs).toISOString(),
    finished_at: new Date(createdAtMs + 1000).toISOString(),
    exit_code: 1,
    error: 'script exited with code 1',
    log: '',
    output_tail: '',
    host_ip: '10.0.2.62',
    priority: null,
    agent_version: '0.1.0',
    ...overrides,
  });
}

const T = Date.UTC(2026, 0, 15, 4, 0, 0);

describe('Spool', () => {
  it('lists reports oldest first and removes them', async () => {
    const spool = await Spool.open(dir.path);
    const late = report(T + 60_000);
    const early = report(T);
    const middle = report(T + 30_000);
    await spool.put(late);
    await spool.put(early);
    await spool.put(middle);
    expect((await spool.list()).map((entry) => entry.report)).toEqual([early, middle, late]);
    expect(await spool.count()).toBe(3);

    expect(await spool.remove(middle.report_id)).toBe(true);
    expect(await spool.remove(middle.report_id)).toBe(false);
    expect((await spool.list()).map((entry) => entry.reportId)).toEqual([early.report_id, late.report_id]);
  });

  it('orders by time across a change in the number of digits', async () => {
    const spool = await Spool.open(dir.path);
    const old = report(999_999_999_000); // 2001, 12 digits
    const recent = report(T); // 13 digits
    await spool.put(recent);
    await spool.put(old);
    expect((await spool.list()).map((entry) => entry.reportId)).toEqual([old.report_id, recent.report_id]);
  });

  it('writes files atomically: named <created_at ms>-<report_id>.json, mode 0600, no temp file left', async () => {
    const spool = await Spool.open(dir.path);
    const r = report(T);
    await spool.put(r);
    const names = await readdir(spool.dir);
    expect(names.sort()).toEqual([spoolFileName(r), 'rejected'].sort());
    expect(spoolFileName(r)).toBe(`00${T}-${r.report_id}.json`);
    expect(names.some((name) => name.endsWith('.tmp'))).toBe(false);
    const info = await stat(join(spool.dir, spoolFileName(r)));
    expect(info.mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(spool.dir, spoolFileName(r)), 'utf8'))).toEqual(r);
  });

  it('survives a restart: a new Spool on the same directory sees the reports', async () => {
    const first = await Spool.open(dir.path);
    const a = report(T);
    const b = report(T + 1);
    await first.put(a);
    await first.put(b);
    const second = await Spool.open(dir.path);
    expect((await second.list()).map((entry) => entry.report)).toEqual([a, b]);
    expect(await second.remove(a.report_id)).toBe(true);
    expect((await (await Spool.open(dir.path)).list()).map((entry) => entry.reportId)).toEqual([b.report_id]);
  });

  it('moves a corrupt file to rejected/ with the reason instead of failing', async () => {
    const corrupt: string[] = [];
    const spool = await Spool.open(dir.path, { onCorrupt: (file) => corrupt.push(file) });
    const good = report(T + 5);
    await spool.put(good);
    const badName = `00${T}-${randomUUID()}.json`;
    await writeFile(join(spool.dir, badName), '{"report_id": "trunc');
    const invalidName = `00${T + 1}-${randomUUID()}.json`;
    await writeFile(join(spool.dir, invalidName), JSON.stringify({ hello: 'world' }));

    const listed = await spool.list();
    expect(listed.map((entry) => entry.reportId)).toEqual([good.report_id]);
    expect(corrupt.sort()).toEqual([badName, invalidName].sort());
    const rejected = (await readdir(spool.rejectedDir)).sort();
    expect(rejected).toEqual(
      [badName, `${badName}.reason.json`, invalidName, `${invalidName}.reason.json`].sort(),
    );
    const reason = JSON.parse(await readFile(join(spool.rejectedDir, `${badName}.reason.json`), 'utf8'));
    expect(reason.reason).toMatch(/corrupt spool file: not JSON/);
    const invalid = JSON.parse(await readFile(join(spool.rejectedDir, `${invalidName}.reason.json`), 'utf8'));
    expect(invalid.reason).toMatch(/not a valid report/);
    expect(await spool.count()).toBe(1);
  });

  it('rejects a report: moved to rejected/ with the server error next to it, never listed again', async () => {
    const spool = await Spool.open(dir.path);
    const r = report(T);
    await spool.put(r);
    const moved = await spool.reject(r.report_id, 'the server refused it for good: 400 validation: bad');
    expect(moved).toBe(join(spool.rejectedDir, spoolFileName(r)));
    expect(await spool.list()).toEqual([]);
    expect(JSON.parse(await readFile(moved ?? '', 'utf8'))).toEqual(r);
    const records = await spool.listRejected();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      report_id: r.report_id,
      reason: expect.stringContaining('400 validation'),
    });
    expect(await (await Spool.open(dir.path)).list()).toEqual([]);
  });

  it('deletes old temp files left by a crash, keeps young ones (another process may be writing)', async () => {
    const spoolDir = join(dir.path, 'spool');
    await Spool.open(dir.path);
    const oldTmp = join(spoolDir, 'x.json.1-aa.tmp');
    const youngTmp = join(spoolDir, 'y.json.1-bb.tmp');
    await writeFile(oldTmp, 'partial');
    await writeFile(youngTmp, 'partial');
    await utimes(oldTmp, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const spool = await Spool.open(dir.path);
    expect((await readdir(spool.dir)).sort()).toEqual(['rejected', 'y.json.1-bb.tmp']);
    expect(await spool.list()).toEqual([]);
  });
});
