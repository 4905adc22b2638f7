import type { CatalogDb } from '../catalog/database.js';
import {
  exportPrivateKey,
  exportPublicKey,
  generateTicketKeys,
  importPrivateKey,
  importPublicKey,
  type TicketKeyPair,
} from '../shared/ticket.js';

export interface TicketKeys extends TicketKeyPair {
  /** The public key as agents store it (base64 SPKI DER). */
  publicKeyBase64: string;
}

/**
 * The server's Ed25519 key pair for signing pull tickets, kept in the catalog
 * so that every server process on one catalog signs with the same key. The
 * first server to start creates it; the others read it.
 */
export async function loadTicketKeys(db: CatalogDb, nowMs: number): Promise<TicketKeys> {
  const fresh = generateTicketKeys();
  await db
    .insertInto('server_keys')
    .values({
      id: 1,
      public_key: exportPublicKey(fresh.publicKey),
      private_key: exportPrivateKey(fresh.privateKey),
      created_at: nowMs,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const row = await db.selectFrom('server_keys').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
  return {
    publicKey: importPublicKey(row.public_key),
    privateKey: importPrivateKey(row.private_key),
    publicKeyBase64: row.public_key,
  };
}
