import { z } from 'zod';
import { blake3Schema, fileNameSchema } from '../shared/report.js';
import { RESTORE_EXIT, RestoreError } from './restore-error.js';

/**
 * The restore plan as `GET /api/v1/restore-plan` answers it, and the call.
 * The schema is lenient about fields it does not use (the server may add
 * more), strict about those it does: each file name must be a safe path
 * component (it becomes a file in the restore directory) and the names must
 * differ.
 */

export const PlanFileSchema = z.object({
  backup_id: z.number().int(),
  kind: z.string().nullable(),
  filename: fileNameSchema,
  size: z.number().int().nonnegative(),
  blake3: blake3Schema,
  created_at: z.string(),
  node: z.string().nullable(),
  path: z.string().nullable().optional(),
  download: z.object({
    /** `<node address>/v1/stored/<backup_id>`; null when the node has no restore address. */
    url: z.string().nullable(),
    ticket: z.string(),
  }),
});
export type PlanFile = z.infer<typeof PlanFileSchema>;

export const RestorePlanSchema = z
  .object({
    at: z.string(),
    target: z.looseObject({ backup_id: z.number().int() }),
    chain: z.array(PlanFileSchema).min(1),
    skipped: z.array(z.looseObject({ backup_id: z.number().int(), reason: z.string() })).default([]),
  })
  .refine(
    (plan) => new Set(plan.chain.map((f) => f.filename)).size === plan.chain.length,
    'two files of the chain have the same name',
  );
export type RestorePlan = z.infer<typeof RestorePlanSchema>;

export interface PlanQuery {
  server: string;
  token: string;
  serverId: string;
  type: string;
  instance: string;
  /** ISO 8601; null for now. */
  at: string | null;
  timeoutMs?: number;
}

const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

export function restorePlanUrl(
  query: Pick<PlanQuery, 'server' | 'serverId' | 'type' | 'instance' | 'at'>,
): URL {
  const base = query.server.endsWith('/') ? query.server : `${query.server}/`;
  const url = new URL('api/v1/restore-plan', base);
  url.searchParams.set('server_id', query.serverId);
  url.searchParams.set('type', query.type);
  url.searchParams.set('instance', query.instance);
  if (query.at !== null) url.searchParams.set('at', query.at);
  return url;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}

/** Fetches the plan; every failure is a RestoreError with its exit code. */
export async function fetchRestorePlan(query: PlanQuery): Promise<RestorePlan> {
  const url = restorePlanUrl(query);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${query.token}`, accept: 'application/json' },
      signal: AbortSignal.timeout(query.timeoutMs ?? 60_000),
    });
    text = await response.text();
  } catch (error) {
    throw new RestoreError(
      RESTORE_EXIT.downloadFailed,
      'server_unreachable',
      `cannot get the restore plan from ${url.origin}: ${describeError(error)}`,
    );
  }
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  if (response.ok) {
    const plan = RestorePlanSchema.safeParse(json);
    if (!plan.success) {
      throw new RestoreError(
        RESTORE_EXIT.unexpected,
        'invalid_plan',
        `the server's answer is not a restore plan: ${plan.error.issues
          .map((i) => `${i.path.join('.') || '(plan)'}: ${i.message}`)
          .slice(0, 5)
          .join('; ')}`,
      );
    }
    return plan.data;
  }
  const body = ErrorBodySchema.safeParse(json);
  const code = body.success ? body.data.error.code : `http_${response.status}`;
  const message = body.success ? body.data.error.message : text.slice(0, 300) || response.statusText;
  const details = body.success ? body.data.error.details : undefined;
  const what = `the server refused the restore plan (${response.status} ${code}): ${message}`;
  if (response.status === 404 && code === 'plan_not_found') {
    throw new RestoreError(RESTORE_EXIT.planNotFound, code, message, details);
  }
  if (response.status === 409 && code === 'chain_broken') {
    throw new RestoreError(RESTORE_EXIT.chainBroken, code, message, details);
  }
  if (response.status === 401 || response.status === 403) {
    throw new RestoreError(
      RESTORE_EXIT.usage,
      code,
      `${what} (check --token: any viewer token will do)`,
      details,
    );
  }
  if (response.status === 400) throw new RestoreError(RESTORE_EXIT.usage, code, what, details);
  if (response.status === 404) {
    throw new RestoreError(
      RESTORE_EXIT.unexpected,
      code,
      `${what} (a server without GET /api/v1/restore-plan: check --server, or upgrade the server)`,
      details,
    );
  }
  throw new RestoreError(RESTORE_EXIT.downloadFailed, code, what, details);
}
