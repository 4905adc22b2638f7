import { randomBytes } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { CatalogSchema } from '../../catalog/schema.js';
import { isUserRole, type UserRole } from './roles.js';
import { hashSecret } from './secret.js';

type Db = Kysely<CatalogSchema> | Transaction<CatalogSchema>;

/** A session ends after this long without a request. */
export const SESSION_IDLE_MS = 12 * 3_600_000;
/** …and this long after the login, whatever the activity. */
export const SESSION_MAX_MS = 7 * 24 * 3_600_000;
/** `last_seen_at` is written at most this often per session. */
export const SESSION_TOUCH_MS = 60_000;

/** The cookie's secret: 256 random bits, base64url (43 characters). */
export function looksLikeSessionSecret(value: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(value);
}

export interface SessionTimes {
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

/** Whether a session is over at `nowMs`: idle too long, or past its absolute end. */
export function sessionExpired(session: SessionTimes, nowMs: number): boolean {
  return nowMs >= session.expires_at || nowMs >= session.last_seen_at + SESSION_IDLE_MS;
}

/** Whether this request should move `last_seen_at` forward. */
export function sessionNeedsTouch(session: SessionTimes, nowMs: number): boolean {
  return nowMs - session.last_seen_at >= SESSION_TOUCH_MS;
}

export interface NewSession {
  id: number;
  /** Goes in the cookie; only its hash is stored. */
  secret: string;
  csrfToken: string;
  expiresAt: number;
}

/** Starts a session for a user (and drops every session that is over, so the table stays small). */
export async function createSession(db: Db, userId: number, nowMs: number): Promise<NewSession> {
  await deleteExpiredSessions(db, nowMs);
  const secret = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  const expiresAt = nowMs + SESSION_MAX_MS;
  const row = await db
    .insertInto('sessions')
    .values({
      user_id: userId,
      secret_hash: hashSecret(secret),
      csrf_token: csrfToken,
      created_at: nowMs,
      last_seen_at: nowMs,
      expires_at: expiresAt,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, secret, csrfToken, expiresAt };
}

export interface ActiveSession {
  id: number;
  csrfToken: string;
  user: { id: number; name: string; role: UserRole; locale: string; time_zone: string };
}

/**
 * The live session a cookie's secret names, with its (enabled) user; null when
 * unknown, over, or the user is disabled. An over session is deleted; a live
 * one has `last_seen_at` moved forward at most once a minute.
 */
export async function findSession(db: Db, secret: string, nowMs: number): Promise<ActiveSession | null> {
  if (!looksLikeSessionSecret(secret)) return null;
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id',
      'sessions.csrf_token',
      'sessions.created_at',
      'sessions.last_seen_at',
      'sessions.expires_at',
      'users.id as user_id',
      'users.name',
      'users.role',
      'users.disabled',
      'users.locale',
      'users.time_zone',
    ])
    .where('sessions.secret_hash', '=', hashSecret(secret))
    .executeTakeFirst();
  if (!row) return null;
  if (sessionExpired(row, nowMs)) {
    await db.deleteFrom('sessions').where('id', '=', row.id).execute();
    return null;
  }
  if (Number(row.disabled) !== 0 || !isUserRole(row.role)) return null;
  if (sessionNeedsTouch(row, nowMs)) {
    await db.updateTable('sessions').set({ last_seen_at: nowMs }).where('id', '=', row.id).execute();
  }
  return {
    id: row.id,
    csrfToken: row.csrf_token,
    user: { id: row.user_id, name: row.name, role: row.role, locale: row.locale, time_zone: row.time_zone },
  };
}

export async function deleteSession(db: Db, sessionId: number): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', sessionId).execute();
}

/** Ends every session of a user (disabled, deleted, or a new password), but `keep` if given. */
export async function deleteUserSessions(db: Db, userId: number, keep?: number): Promise<void> {
  let query = db.deleteFrom('sessions').where('user_id', '=', userId);
  if (keep !== undefined) query = query.where('id', '!=', keep);
  await query.execute();
}

export async function deleteExpiredSessions(db: Db, nowMs: number): Promise<void> {
  await db
    .deleteFrom('sessions')
    .where((eb) => eb.or([eb('expires_at', '<=', nowMs), eb('last_seen_at', '<=', nowMs - SESSION_IDLE_MS)]))
    .execute();
}
