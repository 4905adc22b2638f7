import { hash, verify } from '@node-rs/argon2';

/** People's passwords: argon2id (slow on purpose). Never used for machine secrets. */
export const MIN_PASSWORD_LENGTH = 12;

export function hashPassword(password: string): Promise<string> {
  // @node-rs/argon2 defaults to argon2id, m=19456 KiB, t=2, p=1 (OWASP's baseline).
  return hash(password);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}
