import type { KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { type Report, ReportReceiptSchema } from '../shared/report.js';
import type { RunStart } from '../shared/run-start.js';
import { importPublicKey } from '../shared/ticket.js';
import { UBACKUP_VERSION } from '../shared/version.js';

/**
 * The agent's side of the server API, on Node's built-in fetch. Every call
 * resolves to a decision the caller can act on; none throws for HTTP or
 * network problems:
 *
 *   2xx                        → stored / duplicate (enrolled)
 *   401, 404, 405, 408, 429,
 *   5xx, 3xx, network error,
 *   timeout                    → retry (the report stays in the spool)
 *   any other 4xx              → rejected (permanent: moved to spool/rejected)
 *
 * 401 is retried because it is a credential problem of the host, not of the
 * report: the report must survive until the operator fixes the credential.
 */

/** Per-request timeout, in milliseconds. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Longest piece of an unexpected response body quoted in a message, in characters. */
const MAX_QUOTED_BODY_CHARS = 300;

export type SendReportResult =
  | { kind: 'stored' }
  | { kind: 'duplicate' }
  | { kind: 'rejected'; status: number; code: string; message: string }
  | { kind: 'retry'; reason: string; status: number | null };

export type EnrollResult =
  | {
      kind: 'enrolled';
      credential: string;
      /** The server's ticket key (base64 SPKI DER); present only when the response carried a valid one. */
      ticketPublicKey?: string;
    }
  | { kind: 'rejected'; status: number; code: string; message: string }
  | { kind: 'retry'; reason: string; status: number | null };

export type FetchTicketKeyResult =
  | { kind: 'key'; publicKey: string }
  | { kind: 'retry'; reason: string; status: number | null };

export interface ClientOptions {
  /** Default REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Aborts the request (e.g. the agent is stopping); the call then resolves to retry. */
  signal?: AbortSignal;
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const EnrollResponseSchema = z.object({
  server_id: z.string(),
  credential: z.string().min(1),
  ticket_public_key: z.string().min(1).optional(),
});
const TicketKeyResponseSchema = z.object({ public_key: z.string().min(1) });

/** The key if `base64` is an Ed25519 public key in base64 SPKI DER, else null. */
export function parseTicketPublicKey(base64: string): KeyObject | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return null;
  try {
    const key = importPublicKey(base64);
    return key.asymmetricKeyType === 'ed25519' ? key : null;
  } catch {
    return null;
  }
}

/** `<serverUrl>/<path>`, keeping a path prefix of server_url (`https://h/ubackup` → `https://h/ubackup/api/…`). */
export function apiUrl(serverUrl: string, path: string): string {
  const base = serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`;
  return new URL(path.replace(/^\/+/, ''), base).toString();
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return 'timed out';
  const cause = (error as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return `${error.message}${detail}`;
}

function quoteBody(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return '(empty body)';
  return trimmed.length > MAX_QUOTED_BODY_CHARS ? `${trimmed.slice(0, MAX_QUOTED_BODY_CHARS)}…` : trimmed;
}

interface Answer {
  status: number;
  location: string | null;
  text: string;
}

async function call(
  method: 'GET' | 'POST',
  url: string,
  bearer: string,
  body: unknown,
  options: ClientOptions,
): Promise<Answer | { failed: string }> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        'user-agent': `ubackup-agent/${UBACKUP_VERSION}`,
      },
      ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
      redirect: 'manual',
      signal: options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]),
    });
    // Always read the body, so the connection can be reused.
    const text = await response.text();
    return { status: response.status, location: response.headers.get('location'), text };
  } catch (error) {
    return { failed: `${method} ${url} failed: ${describeError(error)}` };
  }
}

function post(
  url: string,
  bearer: string,
  body: unknown,
  options: ClientOptions,
): Promise<Answer | { failed: string }> {
  return call('POST', url, bearer, body, options);
}

function parseError(answer: Answer): { code: string; message: string } {
  try {
    const parsed = ErrorBodySchema.safeParse(JSON.parse(answer.text));
    if (parsed.success) return parsed.data.error;
  } catch {
    // not JSON
  }
  return { code: `http_${answer.status}`, message: quoteBody(answer.text) };
}

/** Statuses that say "not now" rather than "never". */
/**
 * Answers that say nothing against the report itself. 404 and 405 mean the
 * URL reached something that is not this API (a wrong server_url, a proxy):
 * moving every spooled report to rejected/ for that would be a disaster.
 */
function isTransient(status: number): boolean {
  return (
    status === 401 ||
    status === 404 ||
    status === 405 ||
    status === 408 ||
    status === 429 ||
    status >= 500 ||
    (status >= 300 && status < 400)
  );
}

function retryReason(url: string, answer: Answer, method: 'GET' | 'POST' = 'POST'): string {
  if (answer.status >= 300 && answer.status < 400) {
    return `${method} ${url} answered ${answer.status} redirect to ${answer.location ?? '(no location)'}: check server_url`;
  }
  const { code, message } = parseError(answer);
  if (answer.status === 401) {
    return `the server refused this host's credential (401 ${code}: ${message}); re-enroll the host`;
  }
  return `${method} ${url} answered ${answer.status} ${code}: ${message}`;
}

/** Sends one report. */
export async function sendReport(
  serverUrl: string,
  credential: string,
  report: Report,
  options: ClientOptions = {},
): Promise<SendReportResult> {
  const url = apiUrl(serverUrl, 'api/v1/reports');
  const answer = await post(url, credential, report, options);
  if ('failed' in answer) return { kind: 'retry', reason: answer.failed, status: null };
  if (answer.status >= 200 && answer.status < 300) {
    let duplicate = answer.status === 200;
    try {
      const receipt = ReportReceiptSchema.safeParse(JSON.parse(answer.text));
      if (receipt.success) duplicate = receipt.data.duplicate;
    } catch {
      // a 2xx is an acknowledgement whatever its body says
    }
    return duplicate ? { kind: 'duplicate' } : { kind: 'stored' };
  }
  if (isTransient(answer.status)) {
    return { kind: 'retry', reason: retryReason(url, answer), status: answer.status };
  }
  return { kind: 'rejected', status: answer.status, ...parseError(answer) };
}

/**
 * Tells the server a run started (for the stuck alert). Best effort: a run
 * never waits on the server, so a failure only comes back as its reason.
 */
export async function announceRun(
  serverUrl: string,
  credential: string,
  run: RunStart,
  options: ClientOptions = {},
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const url = apiUrl(serverUrl, 'api/v1/runs');
  const answer = await post(url, credential, run, options);
  if ('failed' in answer) return { ok: false, reason: answer.failed };
  if (answer.status >= 200 && answer.status < 300) return { ok: true };
  const { code, message } = parseError(answer);
  return { ok: false, reason: `${url} answered ${answer.status} ${code}: ${message}` };
}

/** Exchanges the enrollment token for this host's own credential. */
export async function enroll(
  serverUrl: string,
  enrollToken: string,
  serverId: string,
  options: ClientOptions = {},
): Promise<EnrollResult> {
  const url = apiUrl(serverUrl, 'api/v1/agents/enroll');
  const body = { server_id: serverId, hostname: hostname().slice(0, 255), agent_version: UBACKUP_VERSION };
  const answer = await post(url, enrollToken, body, options);
  if ('failed' in answer) return { kind: 'retry', reason: answer.failed, status: null };
  if (answer.status >= 200 && answer.status < 300) {
    try {
      const parsed = EnrollResponseSchema.safeParse(JSON.parse(answer.text));
      if (parsed.success) {
        const key = parsed.data.ticket_public_key;
        const valid = key !== undefined && parseTicketPublicKey(key) !== null;
        return {
          kind: 'enrolled',
          credential: parsed.data.credential,
          ...(valid ? { ticketPublicKey: key } : {}),
        };
      }
    } catch {
      // fall through
    }
    return {
      kind: 'retry',
      reason: `POST ${url} answered ${answer.status} without a credential: ${quoteBody(answer.text)}`,
      status: answer.status,
    };
  }
  if (answer.status === 401 || answer.status === 403) {
    const { code, message } = parseError(answer);
    return {
      kind: 'rejected',
      status: answer.status,
      code,
      message: `the server refused enroll_token (${answer.status} ${code}: ${message})`,
    };
  }
  if (isTransient(answer.status)) {
    return { kind: 'retry', reason: retryReason(url, answer), status: answer.status };
  }
  return { kind: 'rejected', status: answer.status, ...parseError(answer) };
}

/**
 * The server's ticket-signing public key (`GET /api/v1/agents/ticket-key`,
 * with the host's credential). Every failure is `retry`: the file server keeps
 * the key it has (or answers 401 while it has none) and asks again later.
 */
export async function fetchTicketKey(
  serverUrl: string,
  credential: string,
  options: ClientOptions = {},
): Promise<FetchTicketKeyResult> {
  const url = apiUrl(serverUrl, 'api/v1/agents/ticket-key');
  const answer = await call('GET', url, credential, undefined, options);
  if ('failed' in answer) return { kind: 'retry', reason: answer.failed, status: null };
  if (answer.status >= 200 && answer.status < 300) {
    try {
      const parsed = TicketKeyResponseSchema.safeParse(JSON.parse(answer.text));
      if (parsed.success && parseTicketPublicKey(parsed.data.public_key) !== null) {
        return { kind: 'key', publicKey: parsed.data.public_key };
      }
    } catch {
      // fall through
    }
    return {
      kind: 'retry',
      reason: `GET ${url} answered ${answer.status} without an Ed25519 public key: ${quoteBody(answer.text)}`,
      status: answer.status,
    };
  }
  return { kind: 'retry', reason: retryReason(url, answer, 'GET'), status: answer.status };
}
