import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentState, STATE_FILE_NAME } from '../../src/agent/agent-state.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

let dir: TempDir;

beforeEach(async () => {
  dir = await makeTempDir('ubackup-state');
});

afterEach(async () => {
  await dir.cleanup();
});

const KEY = { type: 'mysql', instance: '3306' };

describe('AgentState', () => {
  it('starts empty and keeps the credential and fulls across a restart, in a 0600 file', async () => {
    const stateDir = join(dir.path, 'state');
    const { state, warnings } = await AgentState.open(stateDir);
    expect(warnings).toEqual([]);
    expect(state.credentialFor('111111')).toBeNull();
    expect(await state.lastFull(KEY)).toBeNull();

    await state.setCredential(
      '111111',
      'https://ubackup.example:8080',
      'ubc_secret',
      '2026-01-15T04:00:00.000Z',
    );
    await state.recordFull(KEY, { filename: 'full.xb', createdAt: '2026-01-15T04:00:00.000Z' });

    const reopened = (await AgentState.open(stateDir)).state;
    expect(reopened.credentialFor('111111')).toBe('ubc_secret');
    // A credential is bound to the server_id it was issued for.
    expect(reopened.credentialFor('222222')).toBeNull();
    expect(await reopened.lastFull(KEY)).toEqual({
      filename: 'full.xb',
      createdAt: '2026-01-15T04:00:00.000Z',
    });
    expect(await reopened.lastFull({ type: 'mysql', instance: '3307' })).toBeNull();

    expect((await stat(join(stateDir, STATE_FILE_NAME))).mode & 0o777).toBe(0o600);
    expect(await readdir(stateDir)).toEqual([STATE_FILE_NAME]);
  });

  it('merges changes of two processes sharing the directory (daemon and run-once)', async () => {
    const stateDir = join(dir.path, 'state');
    const daemon = (await AgentState.open(stateDir)).state;
    const runOnce = (await AgentState.open(stateDir)).state;
    await daemon.recordFull(KEY, { filename: 'a.xb', createdAt: '2026-01-15T04:00:00.000Z' });
    await runOnce.recordFull(
      { type: 'redis', instance: '6379' },
      { filename: 'r.rdb', createdAt: '2026-01-15T05:00:00.000Z' },
    );
    await runOnce.recordFull(KEY, { filename: 'b.xb', createdAt: '2026-01-15T06:00:00.000Z' });
    expect(await daemon.lastFull(KEY)).toEqual({ filename: 'b.xb', createdAt: '2026-01-15T06:00:00.000Z' });
    const fresh = (await AgentState.open(stateDir)).state;
    expect(await fresh.lastFull({ type: 'redis', instance: '6379' })).toMatchObject({ filename: 'r.rdb' });
    expect(await fresh.lastFull(KEY)).toMatchObject({ filename: 'b.xb' });
  });

  it('sets a corrupt file aside and says so', async () => {
    const stateDir = dir.path;
    await writeFile(join(stateDir, STATE_FILE_NAME), '{"version": 1, "credential": ');
    const { state, warnings } = await AgentState.open(stateDir, 1234);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/is corrupt \(not JSON.*moved it to .*agent-state\.json\.corrupt-1234/);
    expect(state.credentialFor('111111')).toBeNull();
    expect(await readFile(join(stateDir, `${STATE_FILE_NAME}.corrupt-1234`), 'utf8')).toContain('"version"');
  });
});
