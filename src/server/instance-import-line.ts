import type { z } from 'zod';
import { gameIdSchema, instanceNameSchema, serverIdSchema, typeNameSchema } from '../shared/report.js';
import { instanceDisplayNameSchema } from './instance-fields.js';

/**
 * One line of an instance import: `name server_id type instance game_id`,
 * separated by whitespace or commas. Pure: no I/O; whether the business and
 * type exist is checked by the caller.
 */

export const IMPORT_FIELDS = ['name', 'server_id', 'type', 'instance', 'game_id'] as const;
export type ImportField = (typeof IMPORT_FIELDS)[number];
export type ImportedInstance = Record<ImportField, string>;

export type ImportLine =
  | { kind: 'skip' }
  | { kind: 'instance'; instance: ImportedInstance }
  | { kind: 'malformed'; message: string };

const FIELD_SCHEMAS: Record<ImportField, z.ZodType<string>> = {
  name: instanceDisplayNameSchema,
  server_id: serverIdSchema,
  type: typeNameSchema,
  instance: instanceNameSchema,
  game_id: gameIdSchema,
};

/**
 * A comma (with any whitespace around it) or a run of whitespace separates two fields,
 * so `a,,b` has an empty field rather than silently shifting the columns.
 */
const SEPARATOR = /\s*,\s*|\s+/;

export function parseImportLine(text: string): ImportLine {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'skip' };
  const tokens = trimmed.split(SEPARATOR);
  if (tokens.length !== IMPORT_FIELDS.length) {
    return {
      kind: 'malformed',
      message: `expected 5 fields (${IMPORT_FIELDS.join(' ')}), found ${tokens.length}`,
    };
  }
  const instance: Partial<ImportedInstance> = {};
  for (const [i, field] of IMPORT_FIELDS.entries()) {
    const token = tokens[i] ?? '';
    if (token === '') return { kind: 'malformed', message: `field ${i + 1} (${field}) is empty` };
    const parsed = FIELD_SCHEMAS[field].safeParse(token);
    if (!parsed.success) {
      const reason = parsed.error.issues[0]?.message ?? 'is invalid';
      return { kind: 'malformed', message: `field ${i + 1} (${field}): ${reason}` };
    }
    instance[field] = parsed.data;
  }
  return { kind: 'instance', instance: instance as ImportedInstance };
}
