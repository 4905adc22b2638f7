/**
 * Which retention applies to an instance (DESIGN §11): each setting is taken
 * from the instance, else its type, else its business, else the default.
 * Pure: the caller reads the three rows (any of them may be missing, e.g. for
 * an unregistered instance or a type nobody registered).
 */

export const DEFAULT_RETENTION_DAYS = 15;
export const DEFAULT_KEEP_FULLS = 2;

export type PolicySource = 'instance' | 'type' | 'business' | 'default';

/** The retention settings one level sets; null or absent: not set there. */
export interface RetentionSettings {
  retention_days?: number | null;
  keep_fulls?: number | null;
}

export interface RetentionPolicy {
  /** Every backup made within this many days is kept. */
  retentionDays: number;
  /** At least this many of the newest fulls (or singles) are kept however old. */
  keepFulls: number;
  /** Where each setting came from, for the plan's explanation. */
  source: { retentionDays: PolicySource; keepFulls: PolicySource };
}

function pick(
  levels: ReadonlyArray<readonly [PolicySource, number | null | undefined]>,
  fallback: number,
): [number, PolicySource] {
  for (const [source, value] of levels) {
    if (value !== null && value !== undefined && Number.isInteger(value) && value >= 0)
      return [value, source];
  }
  return [fallback, 'default'];
}

export function resolveRetentionPolicy(
  instance: RetentionSettings | null,
  type: RetentionSettings | null,
  business: RetentionSettings | null,
): RetentionPolicy {
  const [retentionDays, daysSource] = pick(
    [
      ['instance', instance?.retention_days],
      ['type', type?.retention_days],
      ['business', business?.retention_days],
    ],
    DEFAULT_RETENTION_DAYS,
  );
  const [keepFulls, fullsSource] = pick(
    [
      ['instance', instance?.keep_fulls],
      ['type', type?.keep_fulls],
      ['business', business?.keep_fulls],
    ],
    DEFAULT_KEEP_FULLS,
  );
  return { retentionDays, keepFulls, source: { retentionDays: daysSource, keepFulls: fullsSource } };
}
