import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { z } from 'zod';
import type { CatalogSchema, NewBackup } from '../../catalog/schema.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import {
  type Sidecar,
  SidecarSchema,
  StorageLayoutError,
  storedRelativePath,
} from '../../node/storage-layout.js';
import { isPriority, type Priority, priorityRank } from '../../shared/priority.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName, type Principal } from '../auth/principal.js';
import { identityOf } from '../ingest-decision.js';

/**
 * `POST /api/v1/nodes/reindex` (DESIGN §3 invariant 6): a storage node sends
 * the sidecars of the files it holds, and the catalog takes back the map of
 * where each file is.
 *
 * - A backup the catalog knows (by report_id) gets stored_node = this node,
 *   stored_path, stored_at (kept when set, else the sidecar's) and
 *   verified_at; its transfer job is marked done (a lease another node holds
 *   ends: that node's `complete` gets `lease_lost` and it drops its copy).
 * - A backup the catalog does not know (a lost or recreated catalog) is
 *   inserted from the sidecar, status ok, with a done transfer job. It is
 *   illegal ("restored from a storage node's sidecar; …") unless its instance
 *   is registered, in which case the registry gives business, cluster and
 *   priority as it does for reports.
 * - A backup stored on another node, at another path on this node, or whose
 *   catalog row differs from the sidecar (digest, size, identity) is a
 *   conflict: it is listed and nothing is changed for it.
 *
 * A path that is not where the sidecar's own fields put the file, or a field
 * that cannot be a path component, refuses the whole call (400): one
 * transaction per call, so a refused call changes nothing.
 */

export const MAX_REINDEX_ENTRIES = 1000;
/**
 * A call's body limit. An entry with every path component at its longest is
 * about 1.5 KiB (the names appear twice, in the path and in the sidecar), so
 * 4 KiB per entry leaves room; the server's default limit is sized for one report.
 */
export const MAX_REINDEX_BODY_BYTES = MAX_REINDEX_ENTRIES * 4096;

export const RESTORED_ILLEGAL_REASON =
  "restored from a storage node's sidecar; the original report is not in the catalog";

const RESTORED_LOG_PREFIX = 'restored by "ubackup node reindex" from the sidecar on storage node ';

/** `log` of a backup row inserted from a sidecar (the script's log is not in the sidecar). */
export function restoredLog(node: string): string {
  return `${RESTORED_LOG_PREFIX}${node}; the original report is not in the catalog\n`;
}

const parsesAsTime = (value: string) => Number.isFinite(Date.parse(value));

export const ReindexEntrySchema = z.strictObject({
  /** Relative to the node's root: `<game_id>/<type>/<server_id>/<instance>/<filename>`. */
  path: z.string().min(1).max(4096),
  sidecar: SidecarSchema.refine((s) => parsesAsTime(s.created_at), {
    message: 'created_at is not a time',
    path: ['created_at'],
  }).refine((s) => parsesAsTime(s.stored_at), { message: 'stored_at is not a time', path: ['stored_at'] }),
});
export type ReindexEntry = z.infer<typeof ReindexEntrySchema>;

export const ReindexRequestSchema = z.strictObject({
  entries: z.array(ReindexEntrySchema).min(1).max(MAX_REINDEX_ENTRIES),
  /** The node re-hashed every file of this call just now (`--verify`): verified_at becomes now. */
  verified: z.boolean().default(false),
});

export const REINDEX_CONFLICT_REASONS = [
  'stored_on_another_node',
  'stored_at_another_path',
  'content_mismatch',
] as const;
export type ReindexConflictReason = (typeof REINDEX_CONFLICT_REASONS)[number];

export const ReindexConflictSchema = z.object({
  path: z.string(),
  report_id: z.string(),
  backup_id: z.number(),
  reason: z.enum(REINDEX_CONFLICT_REASONS),
  stored_node: z.string().nullable(),
  stored_path: z.string().nullable(),
  message: z.string(),
});
export type ReindexConflict = z.infer<typeof ReindexConflictSchema>;

export const ReindexResponseSchema = z.object({
  /** Backups whose location or transfer job changed. */
  updated: z.number(),
  /** Backups the catalog did not have, inserted from their sidecars. */
  inserted: z.number(),
  /** Backups already recorded on this node at this path, with a done job. */
  unchanged: z.number(),
  conflicts: z.array(ReindexConflictSchema),
});
export type ReindexResponse = z.infer<typeof ReindexResponseSchema>;

type Trx = Transaction<CatalogSchema>;
type NodePrincipal = Extract<Principal, { kind: 'node' }>;

function nodeOf(principal: Principal | null): NodePrincipal {
  if (principal?.kind !== 'node')
    throw new ApiError(403, 'forbidden', 'this route needs a storage node credential');
  return principal;
}

/** Refuses the call unless every entry's path is exactly where its sidecar's fields put the file. */
function checkPaths(entries: readonly ReindexEntry[]): void {
  entries.forEach((entry, index) => {
    let expected: string;
    try {
      expected = storedRelativePath(entry.sidecar);
    } catch (error) {
      if (!(error instanceof StorageLayoutError)) throw error;
      throw new ApiError(400, 'invalid_sidecar', `entries[${index}].sidecar: ${error.message}`);
    }
    if (entry.path !== expected) {
      throw new ApiError(
        400,
        'path_mismatch',
        `entries[${index}]: path ${JSON.stringify(entry.path)} is not where the sidecar's fields put the file (${JSON.stringify(expected)})`,
      );
    }
  });
}

interface CatalogBackup {
  id: number;
  report_id: string;
  server_id: string;
  type: string;
  instance: string;
  filename: string | null;
  status: string;
  blake3: string | null;
  size: number | null;
  cluster_id: number;
  priority: string;
  stored_node: string | null;
  stored_path: string | null;
  stored_at: number | null;
  verified_at: number | null;
  scrub_error: string | null;
}

interface CatalogJob {
  id: number;
  state: string;
  lease_node: string | null;
}

interface Registered {
  instanceId: number;
  name: string;
  gameId: string;
  clusterId: number;
  priority: Priority;
}

const BACKUP_COLUMNS = [
  'id',
  'report_id',
  'server_id',
  'type',
  'instance',
  'filename',
  'status',
  'blake3',
  'size',
  'cluster_id',
  'priority',
  'stored_node',
  'stored_path',
  'stored_at',
  'verified_at',
  'scrub_error',
] as const;

async function backupsByReportId(
  trx: Trx,
  reportIds: readonly string[],
): Promise<Map<string, CatalogBackup>> {
  const found = new Map<string, CatalogBackup>();
  for (const ids of inBatches([...new Set(reportIds)], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('backups')
      .select(BACKUP_COLUMNS)
      .where('report_id', 'in', ids)
      .execute();
    for (const row of rows) found.set(row.report_id, row);
  }
  return found;
}

async function jobsByBackupId(trx: Trx, backupIds: readonly number[]): Promise<Map<number, CatalogJob>> {
  const found = new Map<number, CatalogJob>();
  for (const ids of inBatches([...new Set(backupIds)], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('transfer_jobs')
      .select(['id', 'backup_id', 'state', 'lease_node'])
      .where('backup_id', 'in', ids)
      .execute();
    for (const row of rows)
      found.set(row.backup_id, { id: row.id, state: row.state, lease_node: row.lease_node });
  }
  return found;
}

async function registryOf(trx: Trx, serverIds: readonly string[]): Promise<Map<string, Registered>> {
  const found = new Map<string, Registered>();
  for (const ids of inBatches([...new Set(serverIds)], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('instances')
      .select(['id', 'server_id', 'type', 'instance', 'name', 'game_id', 'cluster_id', 'priority'])
      .where('server_id', 'in', ids)
      .execute();
    for (const row of rows) {
      found.set(identityOf(row), {
        instanceId: row.id,
        name: row.name,
        gameId: row.game_id,
        clusterId: row.cluster_id,
        priority: isPriority(row.priority) ? row.priority : 'normal',
      });
    }
  }
  return found;
}

async function hostAddresses(trx: Trx, serverIds: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const ids of inBatches([...new Set(serverIds)], IN_LIST_BATCH)) {
    const rows = await trx
      .selectFrom('hosts')
      .select(['server_id', 'ip'])
      .where('server_id', 'in', ids)
      .execute();
    for (const row of rows) if (row.ip !== null) found.set(row.server_id, row.ip);
  }
  return found;
}

/** Why the catalog's row for this report_id is not the backup the sidecar describes, or null. */
function contentMismatch(row: CatalogBackup, sidecar: Sidecar): string | null {
  const differences: string[] = [];
  if (row.status !== 'ok') differences.push(`its status is ${row.status}`);
  if (row.blake3 !== sidecar.blake3) differences.push(`blake3 ${row.blake3} ≠ ${sidecar.blake3}`);
  if (row.size !== sidecar.size) differences.push(`size ${row.size} ≠ ${sidecar.size}`);
  for (const field of ['server_id', 'type', 'instance', 'filename'] as const) {
    if (row[field] !== sidecar[field])
      differences.push(`${field} ${JSON.stringify(row[field])} ≠ ${JSON.stringify(sidecar[field])}`);
  }
  return differences.length === 0 ? null : differences.join(', ');
}

interface ReindexInput {
  node: NodePrincipal;
  entries: readonly ReindexEntry[];
  verified: boolean;
  nowMs: number;
  defaultClusterId: number;
  maxAttempts: number;
}

/** Applies one call's entries inside the caller's transaction. */
async function applyEntries(trx: Trx, input: ReindexInput): Promise<ReindexResponse> {
  const { node, entries, verified, nowMs } = input;
  const sidecars = entries.map((e) => e.sidecar);
  const backups = await backupsByReportId(
    trx,
    sidecars.map((s) => s.report_id),
  );
  const jobs = await jobsByBackupId(
    trx,
    [...backups.values()].map((b) => b.id),
  );
  const serverIds = sidecars.map((s) => s.server_id);
  const registry = await registryOf(trx, serverIds);
  const hosts = await hostAddresses(trx, serverIds);

  const answer: ReindexResponse = { updated: 0, inserted: 0, unchanged: 0, conflicts: [] };
  /** Catalog id of each report_id indexed by this call (found or inserted). */
  const indexed = new Map<string, number>();
  const insertedIncrementals: Array<{ id: number; sidecar: Sidecar }> = [];

  const conflict = (
    entry: ReindexEntry,
    row: CatalogBackup,
    reason: ReindexConflictReason,
    message: string,
  ): void => {
    answer.conflicts.push({
      path: entry.path,
      report_id: entry.sidecar.report_id,
      backup_id: row.id,
      reason,
      stored_node: row.stored_node,
      stored_path: row.stored_path,
      message,
    });
  };

  const markJobDone = async (row: CatalogBackup): Promise<boolean> => {
    const job = jobs.get(row.id);
    if (job && job.state === 'done' && job.lease_node === node.name) return false;
    const done = {
      state: 'done',
      lease_node: node.name,
      lease_expires_at: null,
      bytes_done: row.size ?? 0,
      updated_at: nowMs,
    };
    if (job) {
      await trx.updateTable('transfer_jobs').set(done).where('id', '=', job.id).execute();
      jobs.set(row.id, { id: job.id, state: 'done', lease_node: node.name });
      return true;
    }
    const priority: Priority = isPriority(row.priority) ? row.priority : 'normal';
    const created = await trx
      .insertInto('transfer_jobs')
      .values({
        ...done,
        backup_id: row.id,
        cluster_id: row.cluster_id,
        priority: priorityRank(priority),
        attempts: 0,
        max_attempts: input.maxAttempts,
        size: row.size ?? 0,
        enqueued_at: nowMs,
        next_attempt_at: nowMs,
        last_error: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    jobs.set(row.id, { id: created.id, state: 'done', lease_node: node.name });
    return true;
  };

  /** A backup the catalog has: record where it is, unless that would move it. */
  const indexKnown = async (entry: ReindexEntry, row: CatalogBackup): Promise<void> => {
    const { sidecar, path } = entry;
    const mismatch = contentMismatch(row, sidecar);
    if (mismatch !== null) {
      conflict(
        entry,
        row,
        'content_mismatch',
        `the catalog's backup ${row.id} for report ${sidecar.report_id} is not the file the sidecar describes: ${mismatch}`,
      );
      return;
    }
    if (row.stored_node !== null && row.stored_node !== node.name) {
      conflict(
        entry,
        row,
        'stored_on_another_node',
        `backup ${row.id} is stored on node ${row.stored_node} at ${row.stored_path}; not moving it to node ${node.name}`,
      );
      return;
    }
    if (row.stored_node === node.name && row.stored_path !== null && row.stored_path !== path) {
      conflict(
        entry,
        row,
        'stored_at_another_path',
        `backup ${row.id} is stored on this node at ${row.stored_path}; not moving it to ${path}`,
      );
      return;
    }
    const storedAt = row.stored_at ?? Date.parse(sidecar.stored_at);
    // A copy the scrub found damaged stays unverified: only the scrub's next check of it clears that.
    const damaged = row.scrub_error !== null;
    const verifiedAt = damaged ? null : verified ? nowMs : (row.verified_at ?? Date.parse(sidecar.stored_at));
    const located =
      row.stored_node === node.name &&
      row.stored_path === path &&
      row.stored_at !== null &&
      (row.verified_at !== null || damaged);
    if (!located || verifiedAt !== row.verified_at) {
      const result = await trx
        .updateTable('backups')
        .set({
          stored_node: node.name,
          stored_path: path,
          stored_at: storedAt,
          verified_at: verifiedAt,
          ...(damaged ? {} : { scrubbed_at: verifiedAt }),
        })
        .where('id', '=', row.id)
        .where((eb) => eb.or([eb('stored_node', 'is', null), eb('stored_node', '=', node.name)]))
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) {
        // Another node completed it since it was read (PostgreSQL, read committed).
        const now = await trx
          .selectFrom('backups')
          .select(BACKUP_COLUMNS)
          .where('id', '=', row.id)
          .executeTakeFirstOrThrow();
        conflict(
          entry,
          now,
          'stored_on_another_node',
          `backup ${row.id} was just stored on node ${now.stored_node}; not moving it to node ${node.name}`,
        );
        return;
      }
      Object.assign(row, {
        stored_node: node.name,
        stored_path: path,
        stored_at: storedAt,
        verified_at: verifiedAt,
      });
    }
    const jobChanged = await markJobDone(row);
    indexed.set(sidecar.report_id, row.id);
    if (!located || jobChanged) answer.updated += 1;
    else answer.unchanged += 1;
  };

  /** Backups the catalog lost: inserted from their sidecars, with done transfer jobs (batched). */
  const indexLost = async (lost: readonly ReindexEntry[]): Promise<void> => {
    const rows = lost.map((entry) =>
      lostBackupRow(entry, registry.get(identityOf(entry.sidecar)) ?? null, {
        node: node.name,
        hostIp: hosts.get(entry.sidecar.server_id) ?? '',
        verified,
        nowMs,
        defaultClusterId: input.defaultClusterId,
      }),
    );
    const ids = new Map<string, number>();
    for (const part of inBatches(rows, INSERT_BATCH)) {
      const created = await trx
        .insertInto('backups')
        .values(part)
        .onConflict((oc) => oc.column('report_id').doNothing())
        .returning(['id', 'report_id'])
        .execute();
      for (const row of created) ids.set(row.report_id, row.id);
    }
    const inserted: CatalogBackup[] = [];
    const raced: ReindexEntry[] = [];
    lost.forEach((entry, index) => {
      const { sidecar } = entry;
      const id = ids.get(sidecar.report_id);
      const row = rows[index];
      if (id === undefined || row === undefined) {
        raced.push(entry);
        return;
      }
      const backup: CatalogBackup = {
        id,
        report_id: sidecar.report_id,
        server_id: sidecar.server_id,
        type: sidecar.type,
        instance: sidecar.instance,
        filename: sidecar.filename,
        status: 'ok',
        blake3: sidecar.blake3,
        size: sidecar.size,
        cluster_id: row.cluster_id,
        priority: row.priority,
        stored_node: node.name,
        stored_path: entry.path,
        stored_at: row.stored_at ?? null,
        verified_at: row.verified_at ?? null,
        scrub_error: null,
      };
      inserted.push(backup);
      backups.set(sidecar.report_id, backup);
      indexed.set(sidecar.report_id, id);
      if (sidecar.kind === 'incremental' && sidecar.base_backup_id !== null)
        insertedIncrementals.push({ id, sidecar });
    });
    const jobRows = inserted.map((backup) => ({
      backup_id: backup.id,
      cluster_id: backup.cluster_id,
      priority: priorityRank(isPriority(backup.priority) ? backup.priority : 'normal'),
      state: 'done',
      attempts: 0,
      max_attempts: input.maxAttempts,
      size: backup.size ?? 0,
      enqueued_at: nowMs,
      next_attempt_at: nowMs,
      lease_node: node.name,
      lease_expires_at: null,
      bytes_done: backup.size ?? 0,
      last_error: null,
      updated_at: nowMs,
    }));
    for (const part of inBatches(jobRows, INSERT_BATCH)) {
      const created = await trx
        .insertInto('transfer_jobs')
        .values(part)
        .returning(['id', 'backup_id'])
        .execute();
      for (const job of created)
        jobs.set(job.backup_id, { id: job.id, state: 'done', lease_node: node.name });
    }
    answer.inserted += inserted.length;
    if (raced.length === 0) return;
    // The agents' spooled reports arrived meanwhile: index those rows instead.
    const found = await backupsByReportId(
      trx,
      raced.map((e) => e.sidecar.report_id),
    );
    for (const [id, job] of await jobsByBackupId(
      trx,
      [...found.values()].map((b) => b.id),
    ))
      jobs.set(id, job);
    for (const entry of raced) {
      const row = found.get(entry.sidecar.report_id);
      if (!row)
        throw new Error(`backup for report ${entry.sidecar.report_id} was neither inserted nor found`);
      backups.set(entry.sidecar.report_id, row);
      await indexKnown(entry, row);
    }
  };

  // Known backups first, then the lost ones in one batch; a report_id repeated
  // in the call is taken once as sent first, and its repeats are then known.
  const lost: ReindexEntry[] = [];
  const repeats: ReindexEntry[] = [];
  const lostIds = new Set<string>();
  for (const entry of entries) {
    const id = entry.sidecar.report_id;
    const row = backups.get(id);
    if (row) await indexKnown(entry, row);
    else if (lostIds.has(id)) repeats.push(entry);
    else {
      lostIds.add(id);
      lost.push(entry);
    }
  }
  await indexLost(lost);
  for (const entry of repeats) {
    const row = backups.get(entry.sidecar.report_id);
    if (row) await indexKnown(entry, row);
  }
  await linkBaseFulls(trx, insertedIncrementals, sidecars, indexed);
  return answer;
}

/** The backup row of a backup the catalog lost, from its sidecar (and the registry, when registered). */
function lostBackupRow(
  entry: ReindexEntry,
  registered: Registered | null,
  context: { node: string; hostIp: string; verified: boolean; nowMs: number; defaultClusterId: number },
): NewBackup & { cluster_id: number; priority: Priority } {
  const { sidecar, path } = entry;
  const createdAt = Date.parse(sidecar.created_at);
  const storedAt = Date.parse(sidecar.stored_at);
  return {
    report_id: sidecar.report_id,
    instance_id: registered?.instanceId ?? null,
    server_id: sidecar.server_id,
    type: sidecar.type,
    instance: sidecar.instance,
    section: registered?.name ?? '',
    reported_game_id: sidecar.game_id,
    game_id: registered?.gameId ?? sidecar.game_id,
    cluster_id: registered?.clusterId ?? context.defaultClusterId,
    host_ip: context.hostIp,
    created_at: createdAt,
    finished_at: createdAt,
    received_at: context.nowMs,
    status: 'ok',
    kind: sidecar.kind,
    filename: sidecar.filename,
    size: sidecar.size,
    blake3: sidecar.blake3,
    base_filename: null,
    base_created_at: null,
    base_backup_id: null,
    log: restoredLog(context.node),
    error: null,
    exit_code: null,
    output_tail: '',
    legality: registered ? 'legal' : 'illegal',
    illegal_reason: registered ? null : RESTORED_ILLEGAL_REASON,
    priority: registered?.priority ?? 'normal',
    agent_version: '',
    stored_node: context.node,
    stored_path: path,
    stored_at: storedAt,
    verified_at: context.verified ? context.nowMs : storedAt,
  };
}

/**
 * An incremental's base full, for an incremental inserted from its sidecar.
 * The sidecar names the base by the backup id of the catalog that leased it,
 * which a recreated catalog no longer uses: the base is resolved through the
 * full's own sidecar in the same call (whose backup_id is that old id), else
 * through the catalog's row of that id when that row is plainly the same
 * backup (an original row, not one restored from a sidecar, of the same
 * instance, a full, no newer than the incremental). Unresolved stays null.
 */
async function linkBaseFulls(
  trx: Trx,
  incrementals: ReadonlyArray<{ id: number; sidecar: Sidecar }>,
  sidecars: readonly Sidecar[],
  indexed: ReadonlyMap<string, number>,
): Promise<void> {
  if (incrementals.length === 0) return;
  const fullsByOldId = new Map<number, Sidecar>();
  for (const s of sidecars) if (s.kind === 'full') fullsByOldId.set(s.backup_id, s);
  for (const { id, sidecar } of incrementals) {
    const oldId = sidecar.base_backup_id;
    if (oldId === null) continue;
    const full = fullsByOldId.get(oldId);
    const viaSidecar = full !== undefined && identityOf(full) === identityOf(sidecar);
    const candidateId = viaSidecar ? indexed.get(full.report_id) : oldId;
    if (candidateId === undefined) continue;
    const base = await trx
      .selectFrom('backups')
      .select(['id', 'server_id', 'type', 'instance', 'kind', 'status', 'filename', 'created_at', 'log'])
      .where('id', '=', candidateId)
      .executeTakeFirst();
    if (
      !base ||
      identityOf(base) !== identityOf(sidecar) ||
      base.kind !== 'full' ||
      base.status !== 'ok' ||
      base.created_at > Date.parse(sidecar.created_at)
    ) {
      continue;
    }
    // Without the full's sidecar in this call, only an original row can be trusted to keep its old id.
    if (!viaSidecar && base.log.startsWith(RESTORED_LOG_PREFIX)) continue;
    await trx
      .updateTable('backups')
      .set({ base_backup_id: base.id, base_filename: base.filename, base_created_at: base.created_at })
      .where('id', '=', id)
      .execute();
  }
}

/** The node side of catalog recovery: `ubackup node reindex` sends its sidecars here. */
export function reindexRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/nodes/reindex',
      {
        config: { access: 'node' },
        bodyLimit: MAX_REINDEX_BODY_BYTES,
        schema: { body: ReindexRequestSchema, response: { 200: ReindexResponseSchema } },
      },
      async (request) => {
        const node = nodeOf(request.principal);
        const { entries, verified } = request.body;
        checkPaths(entries);
        const nowMs = ctx.clock().getTime();
        const answer = await ctx.catalog.db.transaction().execute(async (trx) => {
          const result = await applyEntries(trx, {
            node,
            entries,
            verified,
            nowMs,
            defaultClusterId: ctx.defaultClusterId,
            maxAttempts: ctx.queue.maxAttempts,
          });
          await recordAudit(trx, {
            at: nowMs,
            actor: actorName(request.principal),
            action: 'node.reindex',
            subject: `node:${node.name}`,
            detail: {
              entries: entries.length,
              verified,
              updated: result.updated,
              inserted: result.inserted,
              unchanged: result.unchanged,
              conflicts: result.conflicts.length,
            },
          });
          return result;
        });
        request.log.info(
          {
            node: node.name,
            entries: entries.length,
            updated: answer.updated,
            inserted: answer.inserted,
            unchanged: answer.unchanged,
            conflicts: answer.conflicts.length,
          },
          'node reindex',
        );
        return answer;
      },
    );
  };
}
