import type { Kysely, Transaction } from 'kysely';
import type { CatalogSchema } from '../catalog/schema.js';

/** Records one write in the audit log, inside the caller's transaction when given one. */
export async function recordAudit(
  db: Kysely<CatalogSchema> | Transaction<CatalogSchema>,
  entry: { actor: string; action: string; subject: string; detail?: unknown; at: number },
): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      at: entry.at,
      actor: entry.actor,
      action: entry.action,
      subject: entry.subject,
      detail: JSON.stringify(entry.detail ?? {}),
    })
    .execute();
}
