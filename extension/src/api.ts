/**
 * The UBackup API as the extension uses it: `GET /api/v1/me`, `GET /api/v1/alerts/summary`,
 * `GET /api/v1/alerts`, `POST /api/v1/alerts/:id/acknowledge`. Free of `chrome`: unit-tested.
 * The shapes mirror src/server/routes/alerts.ts and focus.ts (a unit test checks they agree).
 */

export type Role = 'admin' | 'operator' | 'viewer';

export interface ApiAlert {
  id: number;
  type: string;
  severity: string;
  /** `server_id/type/instance`, a node's name or a cluster's name. */
  subject: string;
  /** The business's game_id; empty for nodes and clusters. */
  business: string;
  state: 'open' | 'acknowledged' | 'resolved';
  summary: string;
  opened_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  last_event_at: string;
  followed: boolean;
}

export interface AlertSummaryAnswer {
  followed: { open: number; acknowledged: number; by_type: Record<string, number> };
  others_open: number;
  total_open: number;
  following: boolean;
  newest: ApiAlert[];
  server_time: string;
}

export interface MeAnswer {
  user: { id: number; name: string; role: Role } | null;
  token: { id: number; name: string; role: Role };
}

export interface AlertPage {
  items: ApiAlert[];
  total: number;
}

export type ApiFailure =
  /** No answer: the network, DNS, TLS, a timeout, or no permission for the origin. */
  | { kind: 'unreachable'; detail: string }
  /** 401 or 403: the token is unknown, revoked, expired or not allowed. */
  | { kind: 'refused'; status: number; code: string; message: string }
  /** Any other answer that is not a success. */
  | { kind: 'http'; status: number; code: string; message: string }
  /** A success whose body is not what the API answers (a proxy's page, another program). */
  | { kind: 'invalid'; detail: string };

export type ApiResult<T> = { ok: true; value: T } | { ok: false; failure: ApiFailure };

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** How long one request may take before the server counts as unreachable. */
export const REQUEST_TIMEOUT_MS = 15_000;

/** An error answer's `{ error: { code, message } }`, or a description of whatever came instead. */
export function errorOf(status: number, statusText: string, body: string): { code: string; message: string } {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) {
      const error = (parsed as { error: unknown }).error;
      if (typeof error === 'object' && error !== null) {
        const { code, message } = error as { code?: unknown; message?: unknown };
        if (typeof code === 'string' && typeof message === 'string') return { code, message };
      }
    }
  } catch {
    // Not JSON: described below.
  }
  const text = body.trim().replace(/\s+/g, ' ').slice(0, 200);
  return { code: `http_${status}`, message: text === '' ? statusText || `HTTP ${status}` : text };
}

/** The failure an HTTP answer that is not a success stands for. */
export function failureOf(status: number, statusText: string, body: string): ApiFailure {
  const { code, message } = errorOf(status, statusText, body);
  return status === 401 || status === 403
    ? { kind: 'refused', status, code, message }
    : { kind: 'http', status, code, message };
}

/** One line saying exactly what went wrong, for the options page, the popup and the badge tooltip. */
export function describeFailure(failure: ApiFailure): string {
  switch (failure.kind) {
    case 'unreachable':
    case 'invalid':
      return failure.detail;
    case 'refused':
    case 'http':
      return `${failure.status} ${failure.code}: ${failure.message}`;
  }
}

/** Calls the API with the token; never throws. */
export async function apiRequest<T>(
  fetchFn: FetchLike,
  serverUrl: string,
  token: string,
  path: string,
  options: { method?: 'GET' | 'POST'; body?: unknown; isValid?: (value: unknown) => boolean } = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  let text: string;
  try {
    response = await fetchFn(`${serverUrl}${path}`, {
      method: options.method ?? 'GET',
      headers,
      credentials: 'omit',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    text = await response.text();
  } catch (error) {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { ok: false, failure: { kind: 'unreachable', detail } };
  }
  if (!response.ok) return { ok: false, failure: failureOf(response.status, response.statusText, text) };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, failure: { kind: 'invalid', detail: `${path} did not answer JSON` } };
  }
  if (options.isValid && !options.isValid(value)) {
    return { ok: false, failure: { kind: 'invalid', detail: `${path} answered an unexpected shape` } };
  }
  return { ok: true, value: value as T };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isSummary(value: unknown): value is AlertSummaryAnswer {
  return (
    isRecord(value) &&
    isRecord(value.followed) &&
    typeof value.followed.open === 'number' &&
    typeof value.followed.acknowledged === 'number' &&
    typeof value.following === 'boolean' &&
    Array.isArray(value.newest) &&
    typeof value.server_time === 'string'
  );
}

export function isMe(value: unknown): value is MeAnswer {
  return (
    isRecord(value) &&
    isRecord(value.token) &&
    typeof value.token.role === 'string' &&
    (value.user === null || (isRecord(value.user) && typeof value.user.name === 'string'))
  );
}

export function isAlertPage(value: unknown): value is AlertPage {
  return isRecord(value) && Array.isArray(value.items) && typeof value.total === 'number';
}

/** Whether the token may acknowledge alerts (the API's `operator` access). */
export function canAcknowledge(me: MeAnswer): boolean {
  return me.token.role === 'operator' || me.token.role === 'admin';
}

export const getMe = (fetchFn: FetchLike, serverUrl: string, token: string) =>
  apiRequest<MeAnswer>(fetchFn, serverUrl, token, '/api/v1/me', { isValid: isMe });

/** The counts, and with `since` the alerts whose last event is after it. */
export const getSummary = (fetchFn: FetchLike, serverUrl: string, token: string, since: string | null) =>
  apiRequest<AlertSummaryAnswer>(
    fetchFn,
    serverUrl,
    token,
    `/api/v1/alerts/summary${since === null ? '' : `?since=${encodeURIComponent(since)}`}`,
    { isValid: isSummary },
  );

/** The newest unresolved alerts of the followed businesses. */
export const getFollowedAlerts = (fetchFn: FetchLike, serverUrl: string, token: string, pageSize: number) =>
  apiRequest<AlertPage>(fetchFn, serverUrl, token, `/api/v1/alerts?followed=true&page_size=${pageSize}`, {
    isValid: isAlertPage,
  });

export const acknowledge = (
  fetchFn: FetchLike,
  serverUrl: string,
  token: string,
  id: number,
  comment: string,
) =>
  apiRequest<ApiAlert>(fetchFn, serverUrl, token, `/api/v1/alerts/${id}/acknowledge`, {
    method: 'POST',
    body: { comment },
  });
