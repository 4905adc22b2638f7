import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Catalog } from '../../src/catalog/database.js';
import type { App } from '../../src/server/app.js';
import { hashPassword } from '../../src/server/auth/password.js';

export const PASSWORD = 'correct horse battery';

/** Adds a person who can log in with `PASSWORD`; returns their id. */
export async function addPerson(
  catalog: Catalog,
  name: string,
  role: 'admin' | 'operator' | 'viewer',
  options: { disabled?: boolean; createdAt?: number } = {},
): Promise<number> {
  const row = await catalog.db
    .insertInto('users')
    .values({
      name,
      role,
      password_hash: await hashPassword(PASSWORD),
      disabled: options.disabled ? 1 : 0,
      created_at: options.createdAt ?? Date.now(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A browser's login: the session cookie and the CSRF token to send back on writes. */
export interface Browser {
  cookie: string;
  csrf: string;
}

export function sessionCookieOf(res: LightMyRequestResponse): string | undefined {
  return res.cookies.find((c) => c.name === 'ubackup_session')?.value;
}

export async function logIn(app: App, name: string, password = PASSWORD): Promise<Browser> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/session', payload: { name, password } });
  if (res.statusCode !== 200) throw new Error(`login of ${name}: ${res.statusCode} ${res.body}`);
  const cookie = sessionCookieOf(res);
  if (!cookie) throw new Error(`login of ${name} set no cookie`);
  return { cookie, csrf: (res.json() as { csrf_token: string }).csrf_token };
}

/** A request as the dashboard makes it: the cookie, and the CSRF header unless told otherwise. */
export function asBrowser(
  app: App,
  browser: Browser,
  request: InjectOptions & { method: string; url: string },
  options: { csrf?: string | null } = {},
): Promise<LightMyRequestResponse> {
  const csrf = options.csrf === undefined ? browser.csrf : options.csrf;
  return app.inject({
    ...request,
    cookies: { ubackup_session: browser.cookie },
    headers: { ...(request.headers ?? {}), ...(csrf === null ? {} : { 'x-csrf-token': csrf }) },
  });
}
