import { randomUUID } from 'node:crypto';
import type { Report } from '../../src/shared/report.js';

/** A valid successful report; override any field. */
export function sampleReport(overrides: Partial<Report> = {}): Report {
  return {
    report_id: randomUUID(),
    server_id: '111111',
    game_id: '31',
    type: 'mysql',
    instance: '3306',
    section: 'mysql3306',
    status: 'ok',
    kind: 'full',
    filename: 'full-20261126.tar.gz',
    size: 1024,
    blake3: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
    base_filename: null,
    base_created_at: null,
    created_at: '2026-11-26T04:00:00.000Z',
    finished_at: '2026-11-26T04:05:00.000Z',
    exit_code: 0,
    error: null,
    log: 'ok\nfull-20261126.tar.gz\n',
    output_tail: '',
    host_ip: '10.0.2.62',
    priority: null,
    agent_version: '0.1.0',
    transport: 'http',
    rsync_model: null,
    pull_port: 8873,
    pull_tls: false,
    ...overrides,
  };
}

export function failedReport(overrides: Partial<Report> = {}): Report {
  return sampleReport({
    status: 'failed',
    kind: null,
    filename: null,
    size: null,
    blake3: null,
    exit_code: 1,
    error: 'script exited with code 1',
    log: 'wrong\ndisk full\n',
    ...overrides,
  });
}
