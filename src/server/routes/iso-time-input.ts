import { z } from 'zod';

/**
 * A time given to the API: ISO 8601 with a zone (`2026-05-01T04:00:00Z`,
 * `2026-05-01T12:00:00+08:00`), read as epoch milliseconds. A time without a
 * zone is refused: whose local time it meant is a guess.
 */
export const isoTimeInput = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 time with a zone, e.g. 2026-05-01T04:00:00Z' })
  .transform((text) => Date.parse(text));
