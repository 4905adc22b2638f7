import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serverIdSchema } from '../../shared/report.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { generateSecret, hashSecret } from '../auth/secret.js';

export const EnrollRequestSchema = z.strictObject({
  server_id: serverIdSchema,
  hostname: z.string().max(255).optional(),
  agent_version: z.string().max(64).optional(),
});
export const EnrollResponseSchema = z.object({
  server_id: z.string(),
  credential: z.string(),
  /** The key pull tickets are signed with (base64 SPKI DER, Ed25519). */
  ticket_public_key: z.string(),
});

/**
 * `POST /api/v1/agents/enroll`: exchanges an enrollment token for the host's own
 * credential, bound to its server_id. A server_id that already has a
 * credential is refused (409 already_enrolled) until an admin resets it with
 * `ubackup admin host reset`; enrollments are audit-logged.
 */
export function enrollRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/api/v1/agents/enroll',
      {
        config: { access: 'enroll' },
        schema: { body: EnrollRequestSchema, response: { 201: EnrollResponseSchema } },
      },
      async (request, reply) => {
        const now = ctx.clock().getTime();
        const credential = generateSecret('credential');
        const credentialHash = hashSecret(credential);
        const { server_id } = request.body;
        await ctx.catalog.db.transaction().execute(async (trx) => {
          const existing = await trx
            .selectFrom('hosts')
            .select(['id', 'credential_hash'])
            .where('server_id', '=', server_id)
            .executeTakeFirst();
          if (existing?.credential_hash) {
            // An enrollment token is shared by a fleet: it must not let one host take another's identity.
            throw new ApiError(
              409,
              'already_enrolled',
              `server_id ${server_id} is already enrolled; if this host was reinstalled, an admin runs ` +
                `"ubackup admin host reset --server-id ${server_id}" and the agent enrolls again by itself`,
            );
          }
          if (existing) {
            await trx
              .updateTable('hosts')
              .set({
                credential_hash: credentialHash,
                enrolled_at: now,
                agent_version: request.body.agent_version ?? null,
              })
              .where('id', '=', existing.id)
              .execute();
          } else {
            await trx
              .insertInto('hosts')
              .values({
                server_id,
                credential_hash: credentialHash,
                enrolled_at: now,
                created_at: now,
                agent_version: request.body.agent_version ?? null,
              })
              .execute();
          }
          await recordAudit(trx, {
            at: now,
            actor: actorName(request.principal),
            action: existing ? 'host.reenroll' : 'host.enroll',
            subject: `host:${server_id}`,
            detail: { hostname: request.body.hostname ?? null },
          });
        });
        request.log.info({ server_id }, 'host enrolled');
        return reply
          .code(201)
          .send({ server_id, credential, ticket_public_key: ctx.ticketKeys.publicKeyBase64 });
      },
    );

    app.get(
      '/api/v1/agents/ticket-key',
      {
        config: { access: 'host' },
        schema: { response: { 200: z.object({ public_key: z.string() }) } },
      },
      async () => ({ public_key: ctx.ticketKeys.publicKeyBase64 }),
    );
  };
}
