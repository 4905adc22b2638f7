/** The server's JSON API, called with the session cookie; writes carry the CSRF token. */

export type Role = 'admin' | 'operator' | 'viewer';
export type Locale = 'zh-CN' | 'en-US';

export interface SessionUser {
  id: number;
  name: string;
  role: Role;
  locale: Locale;
  time_zone: string;
}

export interface Session {
  user: SessionUser;
  csrf_token: string;
}

/** An error answer `{error: {code, message}}`, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let csrfToken = '';
let onUnauthorized: () => void = () => undefined;

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when any request answers 401: the session is gone. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text === '' ? path : `${path}?${text}`;
}

async function errorOf(res: Response): Promise<ApiError> {
  const body: unknown = await res.json().catch(() => null);
  if (body && typeof body === 'object' && 'error' in body) {
    const error = (body as { error: { code?: unknown; message?: unknown } }).error;
    return new ApiError(
      res.status,
      typeof error.code === 'string' ? error.code : 'error',
      typeof error.message === 'string' ? error.message : res.statusText,
    );
  }
  return new ApiError(res.status, 'http_error', `${res.status} ${res.statusText}`);
}

export interface RequestOptions {
  /** Do not treat a 401 as the end of the session (the login call itself). */
  quiet401?: boolean;
  /** A text/plain body instead of JSON. */
  text?: string;
}

export async function request<T>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  let payload: string | undefined;
  if (options.text !== undefined) {
    headers['content-type'] = 'text/plain; charset=utf-8';
    payload = options.text;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (method !== 'GET' && csrfToken !== '') headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (err) {
    throw new ApiError(0, 'network', err instanceof Error ? err.message : String(err));
  }
  if (res.status === 401 && !options.quiet401) onUnauthorized();
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>('GET', withQuery(path, query)),
  post: <T>(path: string, body?: unknown, options?: RequestOptions) =>
    request<T>('POST', path, body, options),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body?: unknown) => request<T>('PATCH', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

/** The page sizes every paged list accepts. */
export const PAGE_SIZES = [10, 20, 50, 200, 500, 1000];
