import type { ApiError } from './api-error.js';

/**
 * Recognises the catalog's constraint errors on both back ends, so a race that
 * slips past a route's own checks still gets a precise answer instead of a 500.
 */
export type ConstraintViolation = 'unique' | 'foreign_key';

const CODES = new Map<string, ConstraintViolation>([
  // PostgreSQL SQLSTATEs
  ['23505', 'unique'],
  ['23503', 'foreign_key'],
  // better-sqlite3 extended result codes
  ['SQLITE_CONSTRAINT_UNIQUE', 'unique'],
  ['SQLITE_CONSTRAINT_PRIMARYKEY', 'unique'],
  ['SQLITE_CONSTRAINT_FOREIGNKEY', 'foreign_key'],
]);

export function constraintViolation(error: unknown): ConstraintViolation | null {
  if (typeof error !== 'object' || error === null || !('code' in error)) return null;
  return typeof error.code === 'string' ? (CODES.get(error.code) ?? null) : null;
}

/** Turns a constraint error that raced past the route's own checks into the matching API error. */
export async function answerConstraintErrors<T>(
  work: Promise<T>,
  answers: { unique?: () => ApiError; foreign_key?: () => ApiError },
): Promise<T> {
  try {
    return await work;
  } catch (error) {
    const kind = constraintViolation(error);
    const answer = kind === null ? undefined : answers[kind];
    throw answer ? answer() : error;
  }
}
