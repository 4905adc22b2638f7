/** Transfer priority levels, best first. */
export const PRIORITIES = ['critical', 'high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Numeric rank used in the catalog: lower is more urgent (critical = 0). */
export function priorityRank(priority: Priority): number {
  return PRIORITIES.indexOf(priority);
}

export function isPriority(value: string): value is Priority {
  return (PRIORITIES as readonly string[]).includes(value);
}

/** The old client's `-q level1` queue meant "high". */
export function parsePriority(value: string): Priority | null {
  const v = value.trim().toLowerCase();
  if (v === 'level1') return 'high';
  return isPriority(v) ? v : null;
}
