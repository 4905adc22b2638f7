import { ApiError } from '../api-error.js';
import type { Principal } from '../auth/principal.js';

/** The person behind the caller's token or session; null for service tokens and machine credentials. */
export function personOf(principal: Principal | null): number | null {
  if (principal?.kind === 'token') return principal.userId;
  if (principal?.kind === 'session') return principal.userId;
  return null;
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

/** The person calling (by their own token or their session); a service token is refused. */
export function requireUser(principal: Principal | null): number {
  if (principal?.kind === 'session') return principal.userId;
  if (principal?.kind === 'token' && principal.userId !== null) return principal.userId;
  throw new ApiError(
    403,
    'needs_user',
    "this needs a person: log in, or use a person's token (the calling token belongs to no user)",
  );
}
