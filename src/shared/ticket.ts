import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { z } from 'zod';
import {
  blake3Schema,
  fileNameSchema,
  instanceNameSchema,
  serverIdSchema,
  typeNameSchema,
} from './report.js';

/**
 * Pull tickets: what the server signs so that a storage node may fetch one
 * file from one agent (DESIGN §6). A ticket is `<payload>.<signature>`, both
 * base64url; the payload is the JSON claims below and the signature is
 * Ed25519 over the payload's bytes. The agent serves exactly the file the
 * claims name, for the host they name, until they expire.
 */
export const TICKET_VERSION = 1;

export const TicketClaimsSchema = z.strictObject({
  v: z.literal(TICKET_VERSION),
  purpose: z.enum(['pull', 'restore']),
  job_id: z.number().int().nullable(),
  backup_id: z.number().int(),
  server_id: serverIdSchema,
  type: typeNameSchema,
  instance: instanceNameSchema,
  filename: fileNameSchema,
  size: z.number().int().nonnegative(),
  blake3: blake3Schema,
  /** The node the ticket was issued to (its name). */
  node: z.string().min(1).max(128),
  /** Expiry, epoch milliseconds. */
  exp: z.number().int(),
});
export type TicketClaims = z.infer<typeof TicketClaimsSchema>;

export type TicketProblem = 'malformed' | 'bad_signature' | 'invalid_claims' | 'expired';
export type TicketCheck = { ok: true; claims: TicketClaims } | { ok: false; problem: TicketProblem };

/** Longest ticket accepted before any parsing (a header, so it is bounded). */
export const MAX_TICKET_CHARS = 4096;

export function signTicket(claims: TicketClaims, privateKey: KeyObject): string {
  const payload = Buffer.from(JSON.stringify(TicketClaimsSchema.parse(claims)), 'utf8');
  const signature = sign(null, payload, privateKey);
  return `${payload.toString('base64url')}.${signature.toString('base64url')}`;
}

/** Checks the signature first, then the claims, then the expiry. Never throws. */
export function verifyTicket(ticket: string, publicKey: KeyObject, nowMs: number): TicketCheck {
  if (ticket.length > MAX_TICKET_CHARS) return { ok: false, problem: 'malformed' };
  const parts = ticket.split('.');
  if (parts.length !== 2 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p)))
    return { ok: false, problem: 'malformed' };
  const payload = Buffer.from(parts[0] as string, 'base64url');
  const signature = Buffer.from(parts[1] as string, 'base64url');
  let valid = false;
  try {
    valid = signature.length === 64 && verify(null, payload, publicKey, signature);
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, problem: 'bad_signature' };
  // One ticket, one spelling: base64url decoding ignores a last character's unused bits.
  if (payload.toString('base64url') !== parts[0] || signature.toString('base64url') !== parts[1]) {
    return { ok: false, problem: 'malformed' };
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, problem: 'invalid_claims' };
  }
  const claims = TicketClaimsSchema.safeParse(json);
  if (!claims.success) return { ok: false, problem: 'invalid_claims' };
  // Written so that a clock that is not a number (NaN) fails closed.
  if (!(claims.data.exp > nowMs)) return { ok: false, problem: 'expired' };
  return { ok: true, claims: claims.data };
}

export interface TicketKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateTicketKeys(): TicketKeyPair {
  return generateKeyPairSync('ed25519');
}

/** The public key as agents receive and store it: base64 of its SPKI DER. */
export function exportPublicKey(key: KeyObject): string {
  return key.export({ format: 'der', type: 'spki' }).toString('base64');
}

export function importPublicKey(base64: string): KeyObject {
  return createPublicKey({ key: Buffer.from(base64, 'base64'), format: 'der', type: 'spki' });
}

export function exportPrivateKey(key: KeyObject): string {
  return key.export({ format: 'der', type: 'pkcs8' }).toString('base64');
}

export function importPrivateKey(base64: string): KeyObject {
  return createPrivateKey({ key: Buffer.from(base64, 'base64'), format: 'der', type: 'pkcs8' });
}
