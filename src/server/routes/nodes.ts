import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { NodeRow } from '../../catalog/schema.js';
import {
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  NodeEnrollRequestSchema,
  NodeEnrollResponseSchema,
} from '../../shared/node-protocol.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { generateSecret, hashSecret } from '../auth/secret.js';
import { pendingDeletes } from '../retention/node-deletes.js';

export const NodeViewSchema = z.object({
  id: z.number(),
  name: z.string(),
  cluster: z.string(),
  address: z.string().nullable(),
  /** active | paused_reserve | paused_admin | offline | new */
  state: z.string(),
  weight: z.number(),
  max_bandwidth: z.number(),
  paused_by_admin: z.boolean(),
  reserve_bytes: z.number(),
  disk_total_bytes: z.number().nullable(),
  disk_free_bytes: z.number().nullable(),
  in_flight: z.number(),
  bytes_per_second: z.number(),
  version: z.string().nullable(),
  last_heartbeat_at: z.string().nullable(),
});

/** A node that missed three heartbeats is offline, whatever it last said. */
export function nodeState(
  row: Pick<NodeRow, 'state' | 'last_heartbeat_at'>,
  nowMs: number,
  heartbeatSeconds: number,
): string {
  if (row.last_heartbeat_at === null) return row.state;
  return nowMs - row.last_heartbeat_at > 3 * heartbeatSeconds * 1000 ? 'offline' : row.state;
}

/**
 * Storage nodes: enrollment, heartbeat (central settings, the ticket key and
 * retention's pending deletes in the reply; the node's restore address in the
 * request), listing and central settings.
 */
export function nodeRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/nodes/enroll',
      {
        config: { access: 'enroll' },
        schema: { body: NodeEnrollRequestSchema, response: { 201: NodeEnrollResponseSchema } },
      },
      async (request, reply) => {
        const body = request.body;
        const now = ctx.clock().getTime();
        const credential = generateSecret('node');
        const nodeId = await ctx.catalog.db.transaction().execute(async (trx) => {
          const cluster = await trx
            .selectFrom('clusters')
            .select('id')
            .where('name', '=', body.cluster)
            .executeTakeFirst();
          if (!cluster) {
            throw new ApiError(
              400,
              'unknown_cluster',
              `cluster "${body.cluster}" is not registered; create it first or leave cluster unset`,
            );
          }
          const existing = await trx
            .selectFrom('nodes')
            .select(['id', 'credential_hash'])
            .where('name', '=', body.name)
            .executeTakeFirst();
          if (existing?.credential_hash) {
            throw new ApiError(
              409,
              'already_enrolled',
              `node ${body.name} is already enrolled; if it was reinstalled, an admin runs "ubackup admin node reset --name ${body.name}"`,
            );
          }
          const values = {
            cluster_id: cluster.id,
            credential_hash: hashSecret(credential),
            address: body.address,
            reserve_bytes: body.reserve_bytes,
            version: body.version,
            enrolled_at: now,
          };
          let id: number;
          if (existing) {
            await trx.updateTable('nodes').set(values).where('id', '=', existing.id).execute();
            id = existing.id;
          } else {
            const row = await trx
              .insertInto('nodes')
              .values({
                ...values,
                name: body.name,
                weight: body.weight,
                max_bandwidth: body.max_bandwidth,
                created_at: now,
              })
              .returning('id')
              .executeTakeFirstOrThrow();
            id = row.id;
          }
          await recordAudit(trx, {
            at: now,
            actor: actorName(request.principal),
            action: existing ? 'node.reenroll' : 'node.enroll',
            subject: `node:${body.name}`,
            detail: { cluster: body.cluster },
          });
          return id;
        });
        request.log.info({ node: body.name, cluster: body.cluster }, 'node enrolled');
        return reply.code(201).send({ node_id: nodeId, name: body.name, cluster: body.cluster, credential });
      },
    );

    app.post(
      '/api/v1/nodes/heartbeat',
      {
        config: { access: 'node' },
        schema: { body: HeartbeatRequestSchema, response: { 200: HeartbeatResponseSchema } },
      },
      async (request) => {
        const principal = request.principal;
        if (principal?.kind !== 'node')
          throw new ApiError(403, 'forbidden', 'heartbeats need a node credential');
        const body = request.body;
        const node = await ctx.catalog.db
          .selectFrom('nodes')
          .select(['weight', 'max_bandwidth', 'paused_by_admin'])
          .where('id', '=', principal.nodeId)
          .executeTakeFirstOrThrow();
        const state = node.paused_by_admin
          ? 'paused_admin'
          : body.paused_reserve
            ? 'paused_reserve'
            : 'active';
        await ctx.catalog.db
          .updateTable('nodes')
          .set({
            disk_total_bytes: body.disk_total_bytes,
            disk_free_bytes: body.disk_free_bytes,
            reserve_bytes: body.reserve_bytes,
            in_flight: body.in_flight.length,
            bytes_per_second: Math.round(body.bytes_per_second),
            version: body.version,
            state,
            last_heartbeat_at: ctx.clock().getTime(),
            // Absent: a node from before restores; it keeps the address it enrolled with.
            ...(body.address !== undefined ? { address: body.address } : {}),
          })
          .where('id', '=', principal.nodeId)
          .execute();
        return {
          weight: node.weight,
          max_bandwidth: node.max_bandwidth,
          paused_by_admin: node.paused_by_admin === 1,
          lease_seconds: ctx.queue.leaseSeconds,
          heartbeat_seconds: ctx.queue.heartbeatSeconds,
          // Nodes check restore tickets with it.
          ticket_public_key: ctx.ticketKeys.publicKeyBase64,
          // Retention's deletes of copies this node stores; confirmed with POST /api/v1/nodes/deletions.
          deletes: await pendingDeletes(ctx.catalog.db, principal.name),
        };
      },
    );

    app.get(
      '/api/v1/nodes',
      {
        config: { access: 'viewer' },
        schema: {
          querystring: z.strictObject({ cluster: z.string().max(64).optional() }),
          response: { 200: z.object({ items: z.array(NodeViewSchema) }) },
        },
      },
      async (request) => {
        let query = ctx.catalog.db
          .selectFrom('nodes')
          .innerJoin('clusters', 'clusters.id', 'nodes.cluster_id')
          .selectAll('nodes')
          .select('clusters.name as cluster');
        if (request.query.cluster !== undefined)
          query = query.where('clusters.name', '=', request.query.cluster);
        const rows = await query.orderBy('nodes.name').execute();
        const now = ctx.clock().getTime();
        return {
          items: rows.map((row) => ({
            id: row.id,
            name: row.name,
            cluster: row.cluster,
            address: row.address,
            state: nodeState(row, now, ctx.queue.heartbeatSeconds),
            weight: row.weight,
            max_bandwidth: row.max_bandwidth,
            paused_by_admin: row.paused_by_admin === 1,
            reserve_bytes: row.reserve_bytes,
            disk_total_bytes: row.disk_total_bytes,
            disk_free_bytes: row.disk_free_bytes,
            in_flight: row.in_flight,
            bytes_per_second: row.bytes_per_second,
            version: row.version,
            last_heartbeat_at:
              row.last_heartbeat_at === null ? null : new Date(row.last_heartbeat_at).toISOString(),
          })),
        };
      },
    );

    app.patch(
      '/api/v1/nodes/:id',
      {
        config: { access: 'operator' },
        schema: {
          params: z.object({ id: z.coerce.number().int().positive() }),
          body: z
            .strictObject({
              weight: z.number().int().min(1).max(256).optional(),
              max_bandwidth: z.number().int().nonnegative().optional(),
              paused_by_admin: z.boolean().optional(),
            })
            .refine(
              (b) => Object.keys(b).length > 0,
              'send at least one of weight, max_bandwidth, paused_by_admin',
            ),
          response: {
            200: z.object({
              id: z.number(),
              weight: z.number(),
              max_bandwidth: z.number(),
              paused_by_admin: z.boolean(),
            }),
          },
        },
      },
      async (request) => {
        const { id } = request.params;
        const body = request.body;
        const now = ctx.clock().getTime();
        return ctx.catalog.db.transaction().execute(async (trx) => {
          const node = await trx.selectFrom('nodes').select(['name']).where('id', '=', id).executeTakeFirst();
          if (!node) throw new ApiError(404, 'not_found', `no node with id ${id}`);
          await trx
            .updateTable('nodes')
            .set({
              ...(body.weight !== undefined ? { weight: body.weight } : {}),
              ...(body.max_bandwidth !== undefined ? { max_bandwidth: body.max_bandwidth } : {}),
              ...(body.paused_by_admin !== undefined
                ? { paused_by_admin: body.paused_by_admin ? 1 : 0 }
                : {}),
            })
            .where('id', '=', id)
            .execute();
          await recordAudit(trx, {
            at: now,
            actor: actorName(request.principal),
            action: 'node.update',
            subject: `node:${node.name}`,
            detail: body,
          });
          const row = await trx
            .selectFrom('nodes')
            .select(['id', 'weight', 'max_bandwidth', 'paused_by_admin'])
            .where('id', '=', id)
            .executeTakeFirstOrThrow();
          return { ...row, paused_by_admin: row.paused_by_admin === 1 };
        });
      },
    );
  };
}
