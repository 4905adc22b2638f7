import { z } from 'zod';
import { BLAKE3_HEX } from './blake3.js';
import { componentProblem, describeComponentProblem } from './path-component.js';
import { PRIORITIES } from './priority.js';

/**
 * The report an agent sends after each run of an instance's script
 * (`POST /api/v1/reports`). It is the wire contract between agent and server;
 * every field is validated here and unknown fields are refused.
 */

/** A string that will become a path component on a storage node. */
export const pathComponent = (what: string) =>
  z.string().superRefine((value, ctx) => {
    const problem = componentProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: `${what} ${describeComponentProblem(problem)}` });
  });

export const serverIdSchema = pathComponent('server_id').pipe(z.string().max(64));
export const gameIdSchema = pathComponent('game_id').pipe(z.string().max(64));
export const typeNameSchema = pathComponent('type').pipe(z.string().max(64));
export const instanceNameSchema = pathComponent('instance').pipe(z.string().max(128));
export const fileNameSchema = pathComponent('filename');
export const blake3Schema = z.string().regex(BLAKE3_HEX, 'blake3 must be 64 lowercase hex characters');
export const ipSchema = z.union([z.ipv4(), z.ipv6()], { error: 'host_ip must be an IPv4 or IPv6 address' });
export const isoTimeSchema = z.iso.datetime({ offset: true });

export const REPORT_STATUSES = ['ok', 'failed'] as const;
export const BACKUP_KINDS = ['single', 'full', 'incremental'] as const;
export type ReportStatus = (typeof REPORT_STATUSES)[number];
export type BackupKind = (typeof BACKUP_KINDS)[number];

/** Largest text fields, in characters. The output tail is the last 4 KiB of output. */
export const MAX_LOG_CHARS = 4096;
export const MAX_ERROR_CHARS = 4096;
export const MAX_OUTPUT_TAIL_CHARS = 8192;

export const ReportSchema = z
  .strictObject({
    report_id: z.uuid(),
    server_id: serverIdSchema,
    game_id: gameIdSchema,
    type: typeNameSchema,
    instance: instanceNameSchema,
    /** The config section the run came from (the instance's display name). */
    section: z.string().min(1).max(128),
    status: z.enum(REPORT_STATUSES),
    kind: z.enum(BACKUP_KINDS).nullable(),
    filename: fileNameSchema.nullable(),
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable(),
    blake3: blake3Schema.nullable(),
    /** For an incremental: the file name of its base full. */
    base_filename: fileNameSchema.nullable(),
    /** For an incremental: when its base full was made, from the agent's own state. */
    base_created_at: isoTimeSchema.nullable(),
    /** When the backup was made: the start of the script run. */
    created_at: isoTimeSchema,
    finished_at: isoTimeSchema,
    exit_code: z.number().int().nullable(),
    error: z.string().max(MAX_ERROR_CHARS).nullable(),
    /** The back_log as the script wrote it (the old list's "log" column). */
    log: z.string().max(MAX_LOG_CHARS),
    output_tail: z.string().max(MAX_OUTPUT_TAIL_CHARS),
    host_ip: ipSchema,
    /** A per-run override of the registry's priority (`run-once --priority high`). */
    priority: z.enum(PRIORITIES).nullable(),
    agent_version: z.string().min(1).max(64),
    /** How storage nodes fetch the file: the agent's file server (http) or the host's rsync daemon. */
    transport: z.enum(['http', 'rsync']).default('http'),
    /** For rsync: the module and directory, as the old `rsync_model` (e.g. `backup/database_3306`). */
    rsync_model: z
      .string()
      .max(256)
      .regex(
        /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/,
        'rsync_model is module[/dir…] of letters, digits, . _ -',
      )
      .refine((v) => !v.split('/').includes('..'), 'rsync_model must not contain ..')
      .nullable()
      .default(null),
    /** The agent's file server port on host_ip (null: it runs none). */
    pull_port: z.number().int().min(1).max(65535).nullable().default(null),
    pull_tls: z.boolean().default(false),
  })
  .superRefine((r, ctx) => {
    if (r.status === 'ok') {
      for (const key of ['filename', 'size', 'blake3', 'kind'] as const) {
        if (r[key] === null)
          ctx.addIssue({ code: 'custom', path: [key], message: `${key} is required when status is ok` });
      }
      if (r.kind === 'incremental' && r.base_filename === null) {
        ctx.addIssue({
          code: 'custom',
          path: ['base_filename'],
          message: 'an incremental needs base_filename',
        });
      }
    } else if (r.error === null || r.error.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['error'], message: 'error is required when status is failed' });
    }
    if (Date.parse(r.finished_at) < Date.parse(r.created_at)) {
      ctx.addIssue({ code: 'custom', path: ['finished_at'], message: 'finished_at is before created_at' });
    }
  });

export type Report = z.infer<typeof ReportSchema>;

/** The server's answer to a report: 201 on first receipt, 200 for a repeated report_id. */
export const ReportReceiptSchema = z.object({
  backup_id: z.number().int(),
  report_id: z.uuid(),
  duplicate: z.boolean(),
  legality: z.enum(['legal', 'illegal']),
  illegal_reason: z.string().nullable(),
  job_id: z.number().int().nullable(),
});
export type ReportReceipt = z.infer<typeof ReportReceiptSchema>;

/** Maximum size of a report body, in bytes. */
export const MAX_REPORT_BYTES = 64 * 1024;
