import { createHash, randomBytes } from 'node:crypto';

/**
 * Machine secrets (API tokens, enrollment tokens, agent and node credentials): 256
 * random bits, base64url, with a prefix that says what they are so a leaked
 * one is recognisable. Stored only as SHA-256 hashes and looked up by hash.
 */
export type SecretKind = 'token' | 'credential' | 'node';

const PREFIX: Record<SecretKind, string> = { token: 'ubt_', credential: 'ubc_', node: 'ubn_' };

export function generateSecret(kind: SecretKind): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A bearer value that could be one of ours; anything else is refused before any look-up. */
export function looksLikeSecret(value: string): boolean {
  return /^ub[tcn]_[A-Za-z0-9_-]{43}$/.test(value);
}
