import type { Catalog } from '../catalog/database.js';
import { recordAudit } from '../server/audit.js';
import { AdminInputError } from './create-user.js';

export interface TokenListing {
  id: number;
  name: string;
  role: string;
  user: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Every token (never the secret: only its hash is stored). */
export async function listTokens(catalog: Catalog): Promise<TokenListing[]> {
  const rows = await catalog.db
    .selectFrom('tokens')
    .leftJoin('users', 'users.id', 'tokens.user_id')
    .select([
      'tokens.id',
      'tokens.name',
      'tokens.role',
      'users.name as user',
      'tokens.created_at',
      'tokens.expires_at',
      'tokens.revoked_at',
    ])
    .orderBy('tokens.id')
    .execute();
  return rows.map((r) => ({
    ...r,
    created_at: iso(r.created_at) ?? '',
    expires_at: iso(r.expires_at),
    revoked_at: iso(r.revoked_at),
  }));
}

/** Revokes the token with this id, or every live token with this name; returns how many. */
export async function revokeTokens(
  catalog: Catalog,
  which: { id: number } | { name: string },
  nowMs: number,
): Promise<number> {
  return catalog.db.transaction().execute(async (trx) => {
    let query = trx.updateTable('tokens').set({ revoked_at: nowMs }).where('revoked_at', 'is', null);
    query = 'id' in which ? query.where('id', '=', which.id) : query.where('name', '=', which.name);
    const result = await query.executeTakeFirst();
    const revoked = Number(result.numUpdatedRows);
    if (revoked === 0) {
      throw new AdminInputError(
        'id' in which ? `no live token with id ${which.id}` : `no live token named "${which.name}"`,
      );
    }
    await recordAudit(trx, {
      at: nowMs,
      actor: 'admin-cli',
      action: 'token.revoke',
      subject: 'id' in which ? `token-id:${which.id}` : `token:${which.name}`,
      detail: { revoked },
    });
    return revoked;
  });
}
