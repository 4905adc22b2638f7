import type { CatalogDb } from '../../catalog/database.js';
import type { PrincipalCache } from './principal-cache.js';
import { isUserRole, roleAllows, type TokenRole, type UserRole } from './roles.js';
import { hashSecret, looksLikeSecret } from './secret.js';

/**
 * Who is calling, as established from the `Authorization: Bearer …` header,
 * or, for people's routes only, from the dashboard's session cookie.
 */
export type Principal =
  | {
      kind: 'token';
      tokenId: number;
      name: string;
      role: UserRole;
      /** The person the token belongs to; null for a service token (scripts, monitoring). */
      userId: number | null;
    }
  | {
      kind: 'session';
      sessionId: number;
      userId: number;
      /** The user's name. */
      name: string;
      /** The user's role now (read at every request, so a change applies at once). */
      role: UserRole;
    }
  | { kind: 'enroll'; tokenId: number; name: string }
  | { kind: 'host'; hostId: number; serverId: string }
  | { kind: 'node'; nodeId: number; name: string; clusterId: number };

/** What a route needs: a role, an agent or node credential, an enrollment token, or nothing (health only). */
export type Access = UserRole | 'host' | 'node' | 'enroll' | 'public';

/** `tokens.last_used_at` is written at most this often (and only when the secret is not in the cache). */
export const LAST_USED_PRECISION_MS = 60_000;

export function bearerValue(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Looks a bearer secret up by its hash. Unknown, revoked or expired secrets give null. */
export async function resolvePrincipal(
  db: CatalogDb,
  secret: string,
  nowMs: number,
  cache?: PrincipalCache,
): Promise<Principal | null> {
  if (!looksLikeSecret(secret)) return null;
  const hash = hashSecret(secret);
  const cached = cache?.get(hash, nowMs);
  if (cached) return cached;
  const principal = await lookUpPrincipal(db, secret, hash, nowMs);
  if (principal) cache?.set(hash, principal, nowMs);
  return principal;
}

async function lookUpPrincipal(
  db: CatalogDb,
  secret: string,
  hash: string,
  nowMs: number,
): Promise<Principal | null> {
  if (secret.startsWith('ubc_')) {
    const host = await db
      .selectFrom('hosts')
      .select(['id', 'server_id'])
      .where('credential_hash', '=', hash)
      .executeTakeFirst();
    return host ? { kind: 'host', hostId: host.id, serverId: host.server_id } : null;
  }
  if (secret.startsWith('ubn_')) {
    const node = await db
      .selectFrom('nodes')
      .select(['id', 'name', 'cluster_id'])
      .where('credential_hash', '=', hash)
      .executeTakeFirst();
    return node ? { kind: 'node', nodeId: node.id, name: node.name, clusterId: node.cluster_id } : null;
  }
  const token = await db
    .selectFrom('tokens')
    .leftJoin('users', 'users.id', 'tokens.user_id')
    .select([
      'tokens.id',
      'tokens.name',
      'tokens.role',
      'tokens.user_id',
      'tokens.expires_at',
      'tokens.revoked_at',
      'tokens.last_used_at',
      'users.role as user_role',
      'users.disabled as user_disabled',
    ])
    .where('tokens.token_hash', '=', hash)
    .executeTakeFirst();
  if (!token || token.revoked_at !== null) return null;
  if (token.expires_at !== null && token.expires_at <= nowMs) return null;
  if (token.last_used_at === null || nowMs - token.last_used_at >= LAST_USED_PRECISION_MS) {
    await db.updateTable('tokens').set({ last_used_at: nowMs }).where('id', '=', token.id).execute();
  }
  const role = token.role as TokenRole;
  if (role === 'enroll') return { kind: 'enroll', tokenId: token.id, name: token.name };
  if (!isUserRole(role)) return null;
  if (token.user_id === null)
    return { kind: 'token', tokenId: token.id, name: token.name, role, userId: null };
  // A person's token: refused while the person is disabled, and never worth more than the person now is.
  if (Number(token.user_disabled) !== 0 || token.user_role === null || !isUserRole(token.user_role))
    return null;
  const effective = roleAllows(token.user_role, role) ? role : token.user_role;
  return { kind: 'token', tokenId: token.id, name: token.name, role: effective, userId: token.user_id };
}

/** A short name for the audit log. */
export function actorName(principal: Principal | null): string {
  if (!principal) return 'anonymous';
  switch (principal.kind) {
    case 'token':
      return `token:${principal.name}`;
    case 'session':
      return `user:${principal.name}`;
    case 'enroll':
      return `enroll-token:${principal.name}`;
    case 'host':
      return `host:${principal.serverId}`;
    case 'node':
      return `node:${principal.name}`;
  }
}
