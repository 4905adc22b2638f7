import { randomUUID } from 'node:crypto';
import type { NewBackup } from '../../src/catalog/schema.js';

const HASH = 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262';

/**
 * A `backups` row as ingest would store it for 111111/mysql/3306 (business
 * 31, default cluster), stored and verified on node-a; override any column.
 * For tests and benchmarks that need a history without sending each report.
 */
export function backupRow(createdAt: number, overrides: Partial<NewBackup> = {}): NewBackup {
  const filename = overrides.filename === undefined ? `backup-${createdAt}.xb` : overrides.filename;
  return {
    report_id: randomUUID(),
    instance_id: null,
    server_id: '111111',
    type: 'mysql',
    instance: '3306',
    section: 'mysql3306',
    reported_game_id: '31',
    game_id: '31',
    cluster_id: 1,
    host_ip: '10.0.2.62',
    created_at: createdAt,
    finished_at: createdAt + 60_000,
    received_at: createdAt + 61_000,
    status: 'ok',
    kind: 'full',
    filename,
    size: 1024,
    blake3: HASH,
    base_filename: null,
    base_created_at: null,
    base_backup_id: null,
    log: `ok\n${filename}\n`,
    error: null,
    exit_code: 0,
    output_tail: '',
    legality: 'legal',
    illegal_reason: null,
    priority: 'normal',
    agent_version: '0.1.0',
    stored_node: 'node-a',
    stored_path: `31/mysql/111111/3306/${filename}`,
    stored_at: createdAt + 120_000,
    verified_at: createdAt + 120_000,
    deleted_at: null,
    rsync_model: null,
    alert_pending: 0,
    ...overrides,
  };
}
