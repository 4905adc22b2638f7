/** People's and API tokens' roles, most powerful first. */
export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** Token roles: a user role, or `enroll` (exchanges itself for a host credential and nothing else). */
export const TOKEN_ROLES = ['enroll', ...USER_ROLES] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

const RANK: Record<UserRole, number> = { admin: 3, operator: 2, viewer: 1 };

/** Whether `held` may do what needs `needed` (admin ⊇ operator ⊇ viewer). */
export function roleAllows(held: UserRole, needed: UserRole): boolean {
  return RANK[held] >= RANK[needed];
}

export function isUserRole(value: string): value is UserRole {
  return (USER_ROLES as readonly string[]).includes(value);
}

export function isTokenRole(value: string): value is TokenRole {
  return (TOKEN_ROLES as readonly string[]).includes(value);
}
