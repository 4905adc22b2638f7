import { ApiError } from '../api-error.js';
import type { Principal } from '../auth/principal.js';

/** The person behind the caller's token; null for service tokens and machine credentials. */
export function personOf(principal: Principal | null): number | null {
  return principal?.kind === 'token' ? principal.userId : null;
}

/** The person behind the caller's token, for what only makes sense for a person (what they follow). */
export function requirePerson(principal: Principal | null): number {
  const userId = personOf(principal);
  if (userId === null) throw needsPerson();
  return userId;
}

export function needsPerson(): ApiError {
  return new ApiError(
    400,
    'focus_needs_user',
    "this needs a person's token: the calling token belongs to no user (see `ubackup token create --user`)",
  );
}
