import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  JobCompleteRequestSchema,
  JobFailRequestSchema,
  JobProgressRequestSchema,
  LeaseRequestSchema,
  LeaseResponseSchema,
} from '../../shared/node-protocol.js';
import { raiseIntegrity, raiseTransferFailed, resolveTransferAlerts } from '../alerts/transfer-alerts.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import type { Principal } from '../auth/principal.js';
import { leaseJobs } from '../queue/lease-jobs.js';
import { afterFailure } from '../queue/retry-schedule.js';
import { recordQueueEvents, recordRollups } from '../stats/record-rollups.js';
import { queueEvent } from '../stats/rollup-increments.js';

const JobIdParams = z.object({ id: z.coerce.number().int().positive() });
const OkSchema = z.object({ ok: z.literal(true) });

type NodePrincipal = Extract<Principal, { kind: 'node' }>;

function nodeOf(principal: Principal | null): NodePrincipal {
  if (principal?.kind !== 'node')
    throw new ApiError(403, 'forbidden', 'this route needs a storage node credential');
  return principal;
}

function leaseLost(jobId: number, node: string): ApiError {
  return new ApiError(
    409,
    'lease_lost',
    `job ${jobId} is not leased to node ${node} (its lease expired or it was done)`,
  );
}

export const JobViewSchema = z.object({
  id: z.number(),
  backup_id: z.number(),
  state: z.string(),
  priority: z.number(),
  attempts: z.number(),
  max_attempts: z.number(),
  size: z.number(),
  bytes_done: z.number(),
  lease_node: z.string().nullable(),
  last_error: z.string().nullable(),
  enqueued_at: z.string(),
  next_attempt_at: z.string(),
  server_id: z.string(),
  type: z.string(),
  instance: z.string(),
  filename: z.string().nullable(),
  cluster: z.string(),
});

/** The queue as nodes use it (lease, progress, complete, fail) and as people see it. */
export function jobRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/nodes/lease',
      {
        config: { access: 'node' },
        schema: { body: LeaseRequestSchema, response: { 200: LeaseResponseSchema } },
      },
      async (request) => {
        const node = nodeOf(request.principal);
        const now = ctx.clock().getTime();
        const jobs = await leaseJobs(ctx.catalog, node, request.body, ctx.queue, ctx.ticketKeys, now);
        ctx.metrics.jobsLeased(
          jobs.map((j) => j.job_id),
          now,
        );
        return { jobs, lease_seconds: ctx.queue.leaseSeconds };
      },
    );

    app.post(
      '/api/v1/jobs/:id/progress',
      {
        config: { access: 'node' },
        schema: {
          params: JobIdParams,
          body: JobProgressRequestSchema,
          response: { 200: z.object({ lease_expires_at: z.string() }) },
        },
      },
      async (request) => {
        const node = nodeOf(request.principal);
        const now = ctx.clock().getTime();
        const expires = now + ctx.queue.leaseSeconds * 1000;
        const result = await ctx.catalog.db
          .updateTable('transfer_jobs')
          .set({ bytes_done: request.body.bytes_done, lease_expires_at: expires, updated_at: now })
          .where('id', '=', request.params.id)
          .where('state', '=', 'leased')
          .where('lease_node', '=', node.name)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 0) throw leaseLost(request.params.id, node.name);
        return { lease_expires_at: new Date(expires).toISOString() };
      },
    );

    app.post(
      '/api/v1/jobs/:id/complete',
      {
        config: { access: 'node' },
        schema: { params: JobIdParams, body: JobCompleteRequestSchema, response: { 200: OkSchema } },
      },
      async (request) => {
        const node = nodeOf(request.principal);
        const now = ctx.clock().getTime();
        const { id } = request.params;
        const completed = await ctx.catalog.db.transaction().execute(async (trx) => {
          const job = await trx
            .selectFrom('transfer_jobs')
            .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
            .select([
              'transfer_jobs.state',
              'transfer_jobs.cluster_id',
              'transfer_jobs.lease_node',
              'transfer_jobs.backup_id',
              'transfer_jobs.leased_at',
              'backups.blake3',
              'backups.size',
              'backups.stored_node',
              'backups.created_at',
              'backups.game_id',
              'backups.type',
            ])
            .where('transfer_jobs.id', '=', id)
            .executeTakeFirst();
          if (!job) throw new ApiError(404, 'not_found', `no job ${id}`);
          // A repeated complete from the node that stored it changes nothing.
          if (job.state === 'done' && job.stored_node === node.name) return false;
          const holds = job.state === 'leased' && job.lease_node === node.name;
          // An expired lease not yet taken by another node: the work is done and verified, keep it.
          const expiredUnclaimed = job.state === 'queued' && job.cluster_id === node.clusterId;
          if (!holds && !expiredUnclaimed) throw leaseLost(id, node.name);
          if (job.blake3 !== request.body.blake3 || job.size !== request.body.size) {
            throw new ApiError(
              409,
              'checksum_mismatch',
              `job ${id}: the node stored ${request.body.size} bytes with blake3 ${request.body.blake3}, the agent reported ${job.size} bytes with ${job.blake3}`,
            );
          }
          const transferMs = job.leased_at === null ? 0 : Math.max(0, now - job.leased_at);
          await trx
            .updateTable('transfer_jobs')
            .set({
              state: 'done',
              lease_expires_at: null,
              lease_node: node.name,
              bytes_done: request.body.size,
              transfer_ms: transferMs,
              updated_at: now,
            })
            .where('id', '=', id)
            .execute();
          await trx
            .updateTable('backups')
            .set({
              stored_node: node.name,
              stored_path: request.body.path,
              stored_at: now,
              verified_at: now,
              scrubbed_at: now,
              scrub_error: null,
            })
            .where('id', '=', job.backup_id)
            .execute();
          await resolveTransferAlerts(trx, job.backup_id, node.name, now);
          // Last: the rollup rows are shared with every ingest of the day, keep them locked briefly.
          await recordRollups(
            trx,
            [{ event: 'stored', ...job, size: request.body.size, node: node.name, transferMs }],
            [queueEvent(now, job.cluster_id, 'done')],
          );
          return true;
        });
        if (completed) ctx.metrics.transferCompleted(node.name, id, request.body.size, now);
        return { ok: true as const };
      },
    );

    app.post(
      '/api/v1/jobs/:id/fail',
      {
        config: { access: 'node' },
        schema: {
          params: JobIdParams,
          body: JobFailRequestSchema,
          response: {
            200: z.object({ state: z.enum(['queued', 'dead']), next_attempt_at: z.string().nullable() }),
          },
        },
      },
      async (request) => {
        const node = nodeOf(request.principal);
        const now = ctx.clock().getTime();
        const { id } = request.params;
        return ctx.catalog.db.transaction().execute(async (trx) => {
          const job = await trx
            .selectFrom('transfer_jobs')
            .select(['state', 'lease_node', 'attempts', 'max_attempts', 'backup_id', 'cluster_id'])
            .where('id', '=', id)
            .executeTakeFirst();
          if (!job) throw new ApiError(404, 'not_found', `no job ${id}`);
          if (job.state !== 'leased' || job.lease_node !== node.name) throw leaseLost(id, node.name);
          ctx.metrics.transferFailed(id);
          const decision = afterFailure({
            attempts: job.attempts,
            maxAttempts: job.max_attempts,
            code: request.body.code,
            nowMs: now,
            baseDelayMs: ctx.queue.retryBaseSeconds * 1000,
          });
          const error = `${request.body.code} on node ${node.name}: ${request.body.error}`;
          await trx
            .updateTable('transfer_jobs')
            .set({
              state: decision.state,
              last_error: error,
              lease_node: null,
              lease_expires_at: null,
              next_attempt_at: decision.state === 'queued' ? decision.nextAttemptAtMs : now,
              updated_at: now,
            })
            .where('id', '=', id)
            .execute();
          if (request.body.code === 'checksum_mismatch') {
            await raiseIntegrity(trx, job.backup_id, 'pull', node.name, now);
          }
          if (decision.state === 'dead') {
            await recordQueueEvents(trx, [queueEvent(now, job.cluster_id, 'dead')]);
            request.log.warn({ job: id, error }, 'transfer job is dead');
            await raiseTransferFailed(trx, [{ jobId: id, attempts: job.attempts, error }], now);
          }
          return {
            state: decision.state,
            next_attempt_at:
              decision.state === 'queued' ? new Date(decision.nextAttemptAtMs).toISOString() : null,
          };
        });
      },
    );

    app.get(
      '/api/v1/jobs',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: z.strictObject({
            state: z.enum(['queued', 'leased', 'done', 'dead']).optional(),
            cluster: z.string().max(64).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ items: z.array(JobViewSchema) }) },
        },
      },
      async (request) => {
        const q = request.query;
        let query = ctx.catalog.db
          .selectFrom('transfer_jobs')
          .innerJoin('backups', 'backups.id', 'transfer_jobs.backup_id')
          .innerJoin('clusters', 'clusters.id', 'transfer_jobs.cluster_id')
          .selectAll('transfer_jobs')
          .select([
            'backups.server_id',
            'backups.type',
            'backups.instance',
            'backups.filename',
            'clusters.name as cluster',
          ]);
        if (q.state !== undefined) query = query.where('transfer_jobs.state', '=', q.state);
        if (q.cluster !== undefined) query = query.where('clusters.name', '=', q.cluster);
        const rows = await query
          .orderBy('transfer_jobs.updated_at', 'desc')
          .orderBy('transfer_jobs.id', 'desc')
          .limit(q.limit)
          .execute();
        return {
          items: rows.map((r) => ({
            id: r.id,
            backup_id: r.backup_id,
            state: r.state,
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            size: r.size,
            bytes_done: r.bytes_done,
            lease_node: r.lease_node,
            last_error: r.last_error,
            enqueued_at: new Date(r.enqueued_at).toISOString(),
            next_attempt_at: new Date(r.next_attempt_at).toISOString(),
            server_id: r.server_id,
            type: r.type,
            instance: r.instance,
            filename: r.filename,
            cluster: r.cluster,
          })),
        };
      },
    );
  };
}
