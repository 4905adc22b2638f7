import type { Catalog } from '../catalog/database.js';
import { recordAudit } from '../server/audit.js';
import { isTokenRole, isUserRole, roleAllows } from '../server/auth/roles.js';
import { generateSecret, hashSecret } from '../server/auth/secret.js';
import { AdminInputError } from './create-user.js';

export interface TokenInput {
  name: string;
  role: string;
  expiresAtMs: number | null;
  userName: string | null;
}

/** Creates an API or enrollment token and returns the secret (shown once; only its hash is kept). */
export async function createToken(catalog: Catalog, input: TokenInput, nowMs: number): Promise<string> {
  return (await issueToken(catalog, input, nowMs, 'admin-cli')).secret;
}

/** Creates a token (CLI and API alike): its id and its secret; `actor` is who is recorded in the audit log. */
export async function issueToken(
  catalog: Catalog,
  input: TokenInput,
  nowMs: number,
  actor: string,
): Promise<{ id: number; secret: string }> {
  if (input.name.length < 1 || input.name.length > 128) throw new AdminInputError('--name: 1-128 characters');
  if (!isTokenRole(input.role)) {
    throw new AdminInputError(`--role must be enroll, admin, operator or viewer, not "${input.role}"`);
  }
  let userId: number | null = null;
  if (input.userName !== null) {
    const user = await catalog.db
      .selectFrom('users')
      .select(['id', 'role'])
      .where('name', '=', input.userName)
      .executeTakeFirst();
    if (!user) throw new AdminInputError(`--user: no user named "${input.userName}"`);
    // A person's token can do no more than the person.
    if (input.role === 'enroll' || !isUserRole(user.role) || !roleAllows(user.role, input.role)) {
      throw new AdminInputError(
        `--user ${input.userName} is ${user.role}: a token of theirs cannot be ${input.role}`,
      );
    }
    userId = user.id;
  }
  const secret = generateSecret('token');
  return catalog.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('tokens')
      .values({
        name: input.name,
        role: input.role,
        token_hash: hashSecret(secret),
        user_id: userId,
        created_at: nowMs,
        expires_at: input.expiresAtMs,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordAudit(trx, {
      at: nowMs,
      actor,
      action: 'token.create',
      subject: `token:${input.name}`,
      detail: { id: row.id, role: input.role, ...(input.userName === null ? {} : { user: input.userName }) },
    });
    return { id: row.id, secret };
  });
}
