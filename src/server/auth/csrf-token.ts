import { createHash, timingSafeEqual } from 'node:crypto';

/** The header a cookie-authenticated write must carry: the session's synchronizer token. */
export const CSRF_HEADER = 'x-csrf-token';

/** Methods that change something: these need the token when the caller came by cookie. */
export function isWriteMethod(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';
}

/** Whether the header's value is the session's token, compared in constant time. */
export function csrfTokenMatches(expected: string, given: string | string[] | undefined): boolean {
  if (typeof given !== 'string' || given === '') return false;
  // Hashing first makes both sides the same length, so the compare leaks nothing, not even the length.
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(given));
}
