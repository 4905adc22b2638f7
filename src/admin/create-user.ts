import type { Catalog } from '../catalog/database.js';
import { recordAudit } from '../server/audit.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from '../server/auth/password.js';
import { isUserRole } from '../server/auth/roles.js';

export class AdminInputError extends Error {
  override name = 'AdminInputError';
}

/** The password as read from a file: one line; a trailing newline is not part of it. */
export function passwordFromFileText(text: string): string {
  return text.replace(/\r?\n$/, '');
}

export async function createUser(
  catalog: Catalog,
  input: { name: string; role: string; password: string },
  nowMs: number,
): Promise<number> {
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(input.name)) {
    throw new AdminInputError('--name: 1-64 characters of letters, digits, . _ @ -');
  }
  if (!isUserRole(input.role))
    throw new AdminInputError(`--role must be admin, operator or viewer, not "${input.role}"`);
  if (input.password.length < MIN_PASSWORD_LENGTH) {
    throw new AdminInputError(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  const existing = await catalog.db
    .selectFrom('users')
    .select('id')
    .where('name', '=', input.name)
    .executeTakeFirst();
  if (existing) throw new AdminInputError(`user "${input.name}" already exists`);
  const passwordHash = await hashPassword(input.password);
  return catalog.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('users')
      .values({ name: input.name, role: input.role, password_hash: passwordHash, created_at: nowMs })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordAudit(trx, {
      at: nowMs,
      actor: 'admin-cli',
      action: 'user.create',
      subject: `user:${input.name}`,
      detail: { role: input.role },
    });
    return row.id;
  });
}
