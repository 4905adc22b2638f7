import { blake3 } from '@napi-rs/blake-hash';
import { type LeasedJob, LeasedJobSchema } from '../../src/shared/node-protocol.js';

/**
 * A job as the server leases it, for `data` served at `url` with `ticket`:
 * job 7 of backup 42, `31/mysql/011111/3306/full-20260115.tar.gz`, unless
 * `overrides` say otherwise. Validated by the protocol's own schema.
 */
export function leasedJobFor(
  data: Buffer,
  url: string,
  ticket: string,
  overrides: Partial<LeasedJob> = {},
): LeasedJob {
  return LeasedJobSchema.parse({
    job_id: 7,
    backup_id: 42,
    report_id: '5d0f7b4e-7c1a-4c55-9a43-2f1f0d6c1a10',
    attempt: 1,
    lease_expires_at: '2026-01-15T05:00:00.000Z',
    game_id: '31',
    server_id: '011111',
    type: 'mysql',
    instance: '3306',
    filename: 'full-20260115.tar.gz',
    size: data.length,
    blake3: blake3(data).toString('hex'),
    kind: 'full',
    created_at: '2026-01-15T04:00:00.000Z',
    base_backup_id: null,
    source: { transport: 'http', url },
    ticket,
    ...overrides,
  });
}
