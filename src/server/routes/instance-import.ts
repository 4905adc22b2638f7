import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ExpressionBuilder } from 'kysely';
import { z } from 'zod';
import type { CatalogDb } from '../../catalog/database.js';
import type { CatalogSchema, NewInstance } from '../../catalog/schema.js';
import { inBatches } from '../../catalog/statement-batches.js';
import { resolveAlertsAbout } from '../alerts/alert-store.js';
import { instanceSubject } from '../alerts/instance-subject.js';
import { ApiError } from '../api-error.js';
import type { AppContext } from '../app-context.js';
import { recordAudit } from '../audit.js';
import { actorName } from '../auth/principal.js';
import { answerConstraintErrors } from '../constraint-violation.js';
import { DEFAULT_GRACE_SECONDS, DEFAULT_INTERVAL_SECONDS, DEFAULT_TIMEZONE } from '../instance-fields.js';
import { type ImportedInstance, parseImportLine } from '../instance-import-line.js';

/** Largest import body (JSON or text/plain). */
export const MAX_IMPORT_BYTES = 4 * 1024 * 1024;
/** Rows per INSERT (and per lookup) while importing. */
export const IMPORT_BATCH_ROWS = 500;
/** A listed line's text is cut to this many characters. */
export const MAX_LISTED_LINE_CHARS = 512;

/** `{ "text": "..." }` as JSON, or the text itself as text/plain (read as `{ text }`). */
export const ImportBodySchema = z.preprocess(
  (body) => (typeof body === 'string' ? { text: body } : body),
  z.strictObject({ text: z.string().max(MAX_IMPORT_BYTES) }),
);

export const ImportLineStatusSchema = z.enum(['created', 'duplicate', 'malformed']);
export type ImportLineStatus = z.infer<typeof ImportLineStatusSchema>;

export const ImportResultSchema = z.object({
  created: z.number().int(),
  duplicate: z.number().int(),
  malformed: z.number().int(),
  /** Only the lines that were not created. */
  lines: z.array(
    z.object({
      line: z.number().int(),
      text: z.string(),
      status: ImportLineStatusSchema,
      message: z.string().optional(),
    }),
  ),
});
export type ImportResult = z.infer<typeof ImportResultSchema>;
type ListedLine = ImportResult['lines'][number];

interface Candidate {
  line: number;
  text: string;
  instance: ImportedInstance;
}

const identityKey = (i: { server_id: string; type: string; instance: string }) =>
  `${i.server_id}\0${i.type}\0${i.instance}`;

function listed(line: number, text: string, status: ImportLineStatus, message: string): ListedLine {
  const shown = text.length > MAX_LISTED_LINE_CHARS ? `${text.slice(0, MAX_LISTED_LINE_CHARS)}…` : text;
  return { line, text: shown, status, message };
}

/** Which of these game_ids are registered businesses. */
async function knownBusinesses(db: CatalogDb, gameIds: Set<string>): Promise<Set<string>> {
  const found = new Set<string>();
  for (const batch of inBatches([...gameIds], IMPORT_BATCH_ROWS)) {
    const rows = await db.selectFrom('businesses').select('game_id').where('game_id', 'in', batch).execute();
    for (const row of rows) found.add(row.game_id);
  }
  return found;
}

/** Which of these names are registered backup types. */
async function knownTypes(db: CatalogDb, names: Set<string>): Promise<Set<string>> {
  const found = new Set<string>();
  for (const batch of inBatches([...names], IMPORT_BATCH_ROWS)) {
    const rows = await db.selectFrom('backup_types').select('name').where('name', 'in', batch).execute();
    for (const row of rows) found.add(row.name);
  }
  return found;
}

/** Registered identities on the candidates' servers, by identity key, with their ids. */
async function registeredIdentities(db: CatalogDb, serverIds: Set<string>): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const batch of inBatches([...serverIds], IMPORT_BATCH_ROWS)) {
    const rows = await db
      .selectFrom('instances')
      .select(['id', 'server_id', 'type', 'instance'])
      .where('server_id', 'in', batch)
      .execute();
    for (const row of rows) found.set(identityKey(row), row.id);
  }
  return found;
}

/** The id of the registered instance with the backup's identity. */
function registeredInstanceOf(eb: ExpressionBuilder<CatalogSchema, 'backups'>) {
  return eb
    .selectFrom('instances as i')
    .select('i.id')
    .whereRef('i.server_id', '=', 'backups.server_id')
    .whereRef('i.type', '=', 'backups.type')
    .whereRef('i.instance', '=', 'backups.instance');
}

/** Links the not-yet-linked backups of these servers to their (now registered) instances. */
async function linkEarlierBackups(db: CatalogDb, serverIds: string[]): Promise<number> {
  let linked = 0;
  for (const batch of inBatches(serverIds, IMPORT_BATCH_ROWS)) {
    const result = await db
      .updateTable('backups')
      .set((eb) => ({ instance_id: registeredInstanceOf(eb) }))
      .where('backups.instance_id', 'is', null)
      .where('backups.server_id', 'in', batch)
      .where((eb) => eb.exists(registeredInstanceOf(eb)))
      .executeTakeFirst();
    linked += Number(result.numUpdatedRows);
  }
  return linked;
}

/**
 * Sorts the lines into created / duplicate / malformed and creates the new
 * instances, all in one transaction (so an import is all or nothing).
 */
async function importInstances(ctx: AppContext, text: string, actor: string): Promise<ImportResult> {
  const nowMs = ctx.clock().getTime();
  const notCreated: ListedLine[] = [];
  const candidates: Candidate[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const parsed = parseImportLine(raw);
    if (parsed.kind === 'malformed') notCreated.push(listed(line, raw.trim(), 'malformed', parsed.message));
    if (parsed.kind === 'instance') candidates.push({ line, text: raw.trim(), instance: parsed.instance });
  });

  return ctx.catalog.db.transaction().execute(async (trx) => {
    const businesses = await knownBusinesses(trx, new Set(candidates.map((c) => c.instance.game_id)));
    const types = await knownTypes(trx, new Set(candidates.map((c) => c.instance.type)));
    const registered = await registeredIdentities(trx, new Set(candidates.map((c) => c.instance.server_id)));
    const firstLine = new Map<string, number>();
    const toCreate: Candidate[] = [];
    for (const candidate of candidates) {
      const { instance, line } = candidate;
      const key = identityKey(instance);
      const repeated = firstLine.get(key);
      const registeredId = registered.get(key);
      if (!businesses.has(instance.game_id)) {
        notCreated.push(
          listed(
            line,
            candidate.text,
            'malformed',
            `unknown business game_id ${JSON.stringify(instance.game_id)}`,
          ),
        );
      } else if (!types.has(instance.type)) {
        notCreated.push(
          listed(line, candidate.text, 'malformed', `unknown backup type ${JSON.stringify(instance.type)}`),
        );
      } else if (repeated !== undefined) {
        notCreated.push(listed(line, candidate.text, 'duplicate', `repeats line ${repeated}`));
      } else if (registeredId !== undefined) {
        notCreated.push(
          listed(line, candidate.text, 'duplicate', `already registered as instance ${registeredId}`),
        );
        firstLine.set(key, line);
      } else {
        firstLine.set(key, line);
        toCreate.push(candidate);
      }
    }

    for (const batch of inBatches(toCreate, IMPORT_BATCH_ROWS)) {
      const rows: NewInstance[] = batch.map(({ instance }) => ({
        name: instance.name,
        server_id: instance.server_id,
        type: instance.type,
        instance: instance.instance,
        game_id: instance.game_id,
        cluster_id: ctx.defaultClusterId,
        priority: 'normal',
        schedule: null,
        interval_seconds: DEFAULT_INTERVAL_SECONDS,
        timezone: DEFAULT_TIMEZONE,
        grace_seconds: DEFAULT_GRACE_SECONDS,
        retention_days: null,
        paused: 0,
        created_at: nowMs,
        updated_at: nowMs,
      }));
      await trx.insertInto('instances').values(rows).execute();
    }
    const linked = await linkEarlierBackups(trx, [...new Set(toCreate.map((c) => c.instance.server_id))]);
    await resolveAlertsAbout(
      trx,
      ['illegal'],
      toCreate.map((c) => instanceSubject(c.instance.server_id, c.instance.type, c.instance.instance)),
      nowMs,
      actor,
      'the instance was registered',
    );

    notCreated.sort((a, b) => a.line - b.line);
    const result: ImportResult = {
      created: toCreate.length,
      duplicate: notCreated.filter((l) => l.status === 'duplicate').length,
      malformed: notCreated.filter((l) => l.status === 'malformed').length,
      lines: notCreated,
    };
    await recordAudit(trx, {
      at: nowMs,
      actor,
      action: 'instance.import',
      subject: 'instances',
      detail: {
        created: result.created,
        duplicate: result.duplicate,
        malformed: result.malformed,
        linked_backups: linked,
      },
    });
    return result;
  });
}

/**
 * `POST /api/v1/instances/import`: one instance per line, `name server_id type instance game_id`,
 * as `{ "text": "..." }` or as text/plain, up to 4 MiB.
 */
export function instanceImportRoutes(ctx: AppContext): FastifyPluginAsyncZod {
  return async (app) => {
    // Scoped to this plugin: elsewhere text/plain keeps the app's default parser and limit.
    app.removeContentTypeParser('text/plain');
    app.addContentTypeParser(
      'text/plain',
      { parseAs: 'string', bodyLimit: MAX_IMPORT_BYTES },
      (_request, body, done) => done(null, body),
    );

    app.post(
      '/api/v1/instances/import',
      {
        config: { access: 'operator' },
        bodyLimit: MAX_IMPORT_BYTES,
        schema: { body: ImportBodySchema, response: { 200: ImportResultSchema } },
      },
      async (request) => {
        return answerConstraintErrors(importInstances(ctx, request.body.text, actorName(request.principal)), {
          unique: () =>
            new ApiError(
              409,
              'duplicate',
              'an instance in the import was registered meanwhile; run the import again',
            ),
        });
      },
    );
  };
}
