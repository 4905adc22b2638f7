import type { z } from 'zod';
import { apiUrl } from '../agent/server-client.js';

/**
 * The storage node's calls to the server: JSON in, JSON out, validated. Never
 * throws for HTTP or network problems; the caller decides from `status` and
 * `code` (e.g. 409 lease_lost means: stop, another node has the job).
 */
export type ServerAnswer<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number | null; code: string; message: string };

export const NODE_REQUEST_TIMEOUT_MS = 30_000;

export async function callServer<S extends z.ZodType>(
  serverUrl: string,
  bearer: string,
  path: string,
  body: unknown,
  schema: S,
  options: { timeoutMs?: number; method?: 'GET' | 'POST' } = {},
): Promise<ServerAnswer<z.output<S>>> {
  let response: Response;
  try {
    response = await fetch(apiUrl(serverUrl, path), {
      method: options.method ?? 'POST',
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? NODE_REQUEST_TIMEOUT_MS),
      redirect: 'manual',
    });
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    const message =
      error instanceof Error
        ? `${error.message}${cause instanceof Error ? `: ${cause.message}` : ''}`
        : String(error);
    return { ok: false, status: null, code: 'network', message };
  }
  const text = await response.text().catch(() => '');
  let json: unknown = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  if (response.ok) {
    const parsed = schema.safeParse(json);
    if (parsed.success) return { ok: true, status: response.status, data: parsed.data };
    return {
      ok: false,
      status: response.status,
      code: 'bad_response',
      message: `unexpected answer from ${path}: ${text.slice(0, 300)}`,
    };
  }
  const error = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return {
    ok: false,
    status: response.status,
    code: typeof error?.code === 'string' ? error.code : `http_${response.status}`,
    message: typeof error?.message === 'string' ? error.message : text.slice(0, 300),
  };
}
