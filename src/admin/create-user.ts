import type { Catalog } from '../catalog/database.js';
import { recordAudit } from '../server/audit.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from '../server/auth/password.js';
import { isUserRole, type UserRole } from '../server/auth/roles.js';

export class AdminInputError extends Error {
  override name = 'AdminInputError';
}

/** The name is taken: the CLI says so, the API answers 409 `user_exists`. */
export class UserExistsError extends AdminInputError {
  override name = 'UserExistsError';
}

/** The password as read from a file: one line; a trailing newline is not part of it. */
export function passwordFromFileText(text: string): string {
  return text.replace(/\r?\n$/, '');
}

export const USER_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

/** Why a user name is refused, or null. */
export function userNameProblem(name: string): string | null {
  return USER_NAME_PATTERN.test(name) ? null : 'name: 1-64 characters of letters, digits, . _ @ -';
}

/** Why a role is refused, or null. */
export function userRoleProblem(role: string): string | null {
  return isUserRole(role) ? null : `role must be admin, operator or viewer, not "${role}"`;
}

/** Why a password is refused, or null. */
export function passwordProblem(password: string): string | null {
  if (password.length < MIN_PASSWORD_LENGTH) {
    return `the password must have at least ${MIN_PASSWORD_LENGTH} characters`;
  }
  if (password.length > 1024) return 'the password must have at most 1024 characters';
  return null;
}

/** Creates a person (CLI and API alike); `actor` is who is recorded in the audit log. */
export async function createUser(
  catalog: Catalog,
  input: { name: string; role: string; password: string },
  nowMs: number,
  actor = 'admin-cli',
): Promise<number> {
  const problem =
    userNameProblem(input.name) ?? userRoleProblem(input.role) ?? passwordProblem(input.password);
  if (problem !== null) throw new AdminInputError(problem);
  const role = input.role as UserRole;
  const existing = await catalog.db
    .selectFrom('users')
    .select('id')
    .where('name', '=', input.name)
    .executeTakeFirst();
  if (existing) throw new UserExistsError(`user "${input.name}" already exists`);
  const passwordHash = await hashPassword(input.password);
  return catalog.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('users')
      .values({ name: input.name, role, password_hash: passwordHash, created_at: nowMs })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordAudit(trx, {
      at: nowMs,
      actor,
      action: 'user.create',
      subject: `user:${input.name}`,
      detail: { role },
    });
    return row.id;
  });
}
