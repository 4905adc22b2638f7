import { sql, type Transaction } from 'kysely';
import type { Catalog } from '../../catalog/database.js';
import type { CatalogSchema } from '../../catalog/schema.js';
import type { JobSource, LeasedJob } from '../../shared/node-protocol.js';
import { PRIORITIES } from '../../shared/priority.js';
import { signTicket, TICKET_VERSION } from '../../shared/ticket.js';
import type { QueueSettings } from '../app-context.js';
import type { TicketKeys } from '../ticket-keys.js';
import { candidateLimit, chooseJobs, type QueueCandidate } from './choose-jobs.js';

export interface LeasingNode {
  nodeId: number;
  name: string;
  clusterId: number;
}

/** The agent's default file server port, when a host has not announced one. */
export const DEFAULT_PULL_PORT = 8873;

/** Rounds of choose-then-take when other nodes took some of the chosen jobs meanwhile. */
const LEASE_ROUNDS = 3;

/** The oldest leasable queued jobs of each priority level of one cluster (index transfer_jobs_lease). */
async function readCandidates(
  trx: Transaction<CatalogSchema>,
  clusterId: number,
  perLevel: number,
  nowMs: number,
): Promise<QueueCandidate[]> {
  const candidates: QueueCandidate[] = [];
  for (let rank = 0; rank < PRIORITIES.length; rank += 1) {
    const rows = await trx
      .selectFrom('transfer_jobs')
      .select(['id', 'priority', 'enqueued_at', 'next_attempt_at', 'size'])
      .where('cluster_id', '=', clusterId)
      .where('state', '=', 'queued')
      .where('priority', '=', rank)
      .where('next_attempt_at', '<=', nowMs)
      .orderBy('enqueued_at')
      .orderBy('id')
      .limit(perLevel)
      .execute();
    for (const c of rows) {
      candidates.push({
        id: c.id,
        priority: c.priority,
        enqueuedAtMs: c.enqueued_at,
        nextAttemptAtMs: c.next_attempt_at,
        size: c.size,
      });
    }
  }
  return candidates;
}

/** A ticket outlives its lease a little, so a transfer renewed just in time is not cut off. */
const TICKET_MARGIN_MS = 60_000;

/**
 * Leases up to `slots` queued jobs of the node's cluster (DESIGN §8): reads the
 * oldest leasable jobs of each priority level, lets `chooseJobs` decide, marks
 * the chosen ones leased in the same transaction and signs a pull ticket for
 * each. On PostgreSQL the chosen rows are locked with FOR UPDATE SKIP LOCKED
 * and updated only while still queued, so two nodes never get the same job;
 * on SQLite the whole lease is one write transaction on the server's only
 * connection.
 */
export async function leaseJobs(
  catalog: Catalog,
  node: LeasingNode,
  request: { slots: number; free_bytes: number },
  settings: QueueSettings,
  keys: TicketKeys,
  nowMs: number,
): Promise<LeasedJob[]> {
  const leaseExpiresAt = nowMs + settings.leaseSeconds * 1000;
  const chosenIds = await catalog.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('nodes')
      .select(['paused_by_admin', 'reserve_bytes'])
      .where('id', '=', node.nodeId)
      .executeTakeFirstOrThrow();
    if (row.paused_by_admin) return [];
    const inFlight = await trx
      .selectFrom('transfer_jobs')
      .select((eb) =>
        eb.fn.coalesce(eb.fn.sum<number>(sql<number>`size - bytes_done`), eb.val(0)).as('bytes'),
      )
      .where('state', '=', 'leased')
      .where('lease_node', '=', node.name)
      .executeTakeFirstOrThrow();
    const budgetBytes = request.free_bytes - row.reserve_bytes - Number(inFlight.bytes);
    if (budgetBytes < 0) return [];

    // Choose from a plain read, then take the chosen rows: on PostgreSQL only those
    // not locked by another node's lease (FOR UPDATE SKIP LOCKED), so concurrent
    // leases lock no more than they take. What another node took meanwhile is
    // chosen around in the next round.
    const taken: number[] = [];
    const passedOver = new Set<number>();
    let slots = request.slots;
    let budget = budgetBytes;
    for (let round = 0; round < LEASE_ROUNDS && slots > 0; round += 1) {
      const candidates = (await readCandidates(trx, node.clusterId, candidateLimit(slots), nowMs)).filter(
        (c) => !passedOver.has(c.id) && !taken.includes(c.id),
      );
      const chosen = chooseJobs(candidates, { slots, budgetBytes: budget }, nowMs, settings.agingSeconds);
      if (chosen.length === 0) break;
      let ids = chosen.map((c) => c.id);
      if (catalog.dialect === 'postgres') {
        const locked = await trx
          .selectFrom('transfer_jobs')
          .select('id')
          .where('id', 'in', ids)
          .where('state', '=', 'queued')
          .forUpdate()
          .skipLocked()
          .execute();
        const lockedIds = new Set(locked.map((l) => l.id));
        for (const id of ids) if (!lockedIds.has(id)) passedOver.add(id);
        ids = ids.filter((id) => lockedIds.has(id));
      }
      if (ids.length > 0) {
        await trx
          .updateTable('transfer_jobs')
          .set((eb) => ({
            state: 'leased',
            lease_node: node.name,
            lease_expires_at: leaseExpiresAt,
            leased_at: nowMs,
            attempts: eb('attempts', '+', 1),
            bytes_done: 0,
            updated_at: nowMs,
          }))
          .where('id', 'in', ids)
          .where('state', '=', 'queued')
          .execute();
      }
      for (const c of chosen) {
        if (!ids.includes(c.id)) continue;
        taken.push(c.id);
        slots -= 1;
        budget -= c.size;
      }
      if (ids.length === chosen.length) break;
    }
    return taken;
  });
  if (chosenIds.length === 0) return [];

  const rows = await catalog.db
    .selectFrom('transfer_jobs')
    .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
    .leftJoin('hosts', 'hosts.server_id', 'backups.server_id')
    .select([
      'transfer_jobs.id as job_id',
      'transfer_jobs.attempts',
      'transfer_jobs.enqueued_at',
      'backups.id as backup_id',
      'backups.report_id',
      'backups.game_id',
      'backups.server_id',
      'backups.type',
      'backups.instance',
      'backups.filename',
      'backups.size',
      'backups.blake3',
      'backups.kind',
      'backups.created_at',
      'backups.base_backup_id',
      'backups.host_ip',
      'backups.transport',
      'backups.rsync_model',
      'hosts.pull_port',
      'hosts.pull_tls',
    ])
    .where('transfer_jobs.id', 'in', chosenIds)
    .where('transfer_jobs.lease_node', '=', node.name)
    .execute();
  const order = new Map(chosenIds.map((id, i) => [id, i]));
  rows.sort((a, b) => (order.get(a.job_id) ?? 0) - (order.get(b.job_id) ?? 0));
  return rows.map((r) => {
    const filename = r.filename ?? '';
    const blake3 = r.blake3 ?? '';
    const size = r.size ?? 0;
    return {
      job_id: r.job_id,
      backup_id: r.backup_id,
      report_id: r.report_id,
      attempt: r.attempts,
      lease_expires_at: new Date(leaseExpiresAt).toISOString(),
      game_id: r.game_id,
      server_id: r.server_id,
      type: r.type,
      instance: r.instance,
      filename,
      size,
      blake3,
      kind: r.kind === 'single' || r.kind === 'full' || r.kind === 'incremental' ? r.kind : null,
      created_at: new Date(r.created_at).toISOString(),
      base_backup_id: r.base_backup_id,
      source: jobSource(r),
      ticket: signTicket(
        {
          v: TICKET_VERSION,
          purpose: 'pull',
          job_id: r.job_id,
          backup_id: r.backup_id,
          server_id: r.server_id,
          type: r.type,
          instance: r.instance,
          filename,
          size,
          blake3,
          node: node.name,
          exp: leaseExpiresAt + TICKET_MARGIN_MS,
        },
        keys.privateKey,
      ),
    };
  });
}

/** Where a node fetches the file: the agent's file server, or the host's rsync daemon. */
export function jobSource(r: {
  host_ip: string;
  transport: string;
  rsync_model: string | null;
  server_id: string;
  type: string;
  instance: string;
  filename: string | null;
  pull_port: number | null;
  pull_tls: number | null;
}): JobSource {
  const filename = r.filename ?? '';
  if (r.transport === 'rsync' && r.rsync_model) {
    const [module, ...dirs] = r.rsync_model.split('/');
    return { transport: 'rsync', host: r.host_ip, module: module ?? '', path: [...dirs, filename].join('/') };
  }
  const host = r.host_ip.includes(':') ? `[${r.host_ip}]` : r.host_ip;
  const scheme = r.pull_tls ? 'https' : 'http';
  const path = [r.server_id, r.type, r.instance, filename].map(encodeURIComponent).join('/');
  return {
    transport: 'http',
    url: `${scheme}://${host}:${r.pull_port ?? DEFAULT_PULL_PORT}/v1/files/${path}`,
  };
}
