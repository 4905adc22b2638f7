import { z } from 'zod';
import {
  blake3Schema,
  fileNameSchema,
  gameIdSchema,
  instanceNameSchema,
  serverIdSchema,
  typeNameSchema,
} from './report.js';

/**
 * The storage node's side of the API: enrollment, heartbeat, leases and job
 * outcomes. Shared by the server's routes and the node's client.
 */

export const nodeNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._-]+$/, 'a node name is letters, digits, . _ -');

/** A node's restore address: an http(s) origin, without a path, query or credentials. */
export const restoreAddressSchema = z
  .string()
  .max(300)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (
        (url.protocol === 'http:' || url.protocol === 'https:') &&
        url.username === '' &&
        url.password === '' &&
        url.search === '' &&
        url.hash === '' &&
        (url.pathname === '/' || url.pathname === '') &&
        !value.endsWith('/')
      );
    } catch {
      return false;
    }
  }, 'an address is http(s)://host:port with no path, e.g. http://10.0.0.5:8874');

export const NodeEnrollRequestSchema = z.strictObject({
  name: nodeNameSchema,
  /** The cluster the node joins; `default` takes unregistered instances' jobs too. */
  cluster: z.string().min(1).max(64).default('default'),
  /** host:port where the node serves stored files for restores. */
  address: z.string().max(300).nullable().default(null),
  weight: z.number().int().min(1).max(256),
  reserve_bytes: z.number().int().nonnegative(),
  /** The node's configured total bandwidth (bytes/s, 0 = unlimited); the central value wins afterwards. */
  max_bandwidth: z.number().int().nonnegative().default(0),
  version: z.string().max(64),
});
export const NodeEnrollResponseSchema = z.object({
  node_id: z.number().int(),
  name: z.string(),
  cluster: z.string(),
  credential: z.string(),
});

export const HeartbeatRequestSchema = z.strictObject({
  disk_total_bytes: z.number().int().nonnegative(),
  disk_free_bytes: z.number().int().nonnegative(),
  reserve_bytes: z.number().int().nonnegative(),
  /** The node leases nothing: free space minus bytes in flight is under its reserve. */
  paused_reserve: z.boolean(),
  in_flight: z
    .array(z.strictObject({ job_id: z.number().int(), bytes_done: z.number().int().nonnegative() }))
    .max(1024),
  bytes_per_second: z.number().nonnegative(),
  version: z.string().max(64),
  /**
   * Where the node serves stored files for restores: `http://<host>:<port>`,
   * no path (`<address>/v1/stored/<backup_id>`); null when it serves none
   * (`listen = off`, or the port could not be bound). Absent (a node from
   * before restores) leaves the stored address as it is.
   */
  address: restoreAddressSchema.nullable().optional(),
});

/** Most deletes one heartbeat reply carries; the rest come with the next ones. */
export const MAX_DELETES_PER_HEARTBEAT = 256;

/** One stored copy to delete: the backup and its path relative to the node's root, as `complete` reported it. */
export const StoredDeleteSchema = z.object({
  backup_id: z.number().int().positive(),
  path: z.string().min(1).max(4096),
});
export type StoredDelete = z.infer<typeof StoredDeleteSchema>;

/** The node confirms the copies it deleted (or found already gone); failed ones come again. */
export const NodeDeletionsRequestSchema = z.strictObject({
  deleted: z.array(z.number().int().positive()).max(1024),
});
export const NodeDeletionsResponseSchema = z.object({
  /** How many of them the catalog now records as deleted (others were not pending on this node). */
  confirmed: z.number().int().nonnegative(),
});

/** The central settings win over the node's config (DESIGN §5). */
export const HeartbeatResponseSchema = z.object({
  weight: z.number().int(),
  /** Node-wide bytes/s; 0 = unlimited. */
  max_bandwidth: z.number().int().nonnegative(),
  paused_by_admin: z.boolean(),
  lease_seconds: z.number().int().positive(),
  heartbeat_seconds: z.number().int().positive(),
  /**
   * The server's ticket-signing public key (base64 SPKI DER): the node checks
   * restore tickets with it. Optional only so a node can talk to a server from
   * before restores (it then serves no restore until a server sends the key).
   */
  ticket_public_key: z.string().min(1).max(1024).optional(),
  /**
   * Stored copies retention decided to delete (DESIGN §11), oldest request
   * first: the node removes file and sidecar and confirms with
   * `POST /api/v1/nodes/deletions`. Absent from servers before retention.
   */
  deletes: z.array(StoredDeleteSchema).max(MAX_DELETES_PER_HEARTBEAT).optional(),
});

export const LeaseRequestSchema = z.strictObject({
  slots: z.number().int().min(1).max(256),
  free_bytes: z.number().int().nonnegative(),
});

export const JobSourceSchema = z.discriminatedUnion('transport', [
  z.object({ transport: z.literal('http'), url: z.string() }),
  z.object({ transport: z.literal('rsync'), host: z.string(), module: z.string(), path: z.string() }),
]);
export type JobSource = z.infer<typeof JobSourceSchema>;

export const LeasedJobSchema = z.object({
  job_id: z.number().int(),
  backup_id: z.number().int(),
  report_id: z.string(),
  attempt: z.number().int(),
  lease_expires_at: z.string(),
  game_id: gameIdSchema,
  server_id: serverIdSchema,
  type: typeNameSchema,
  instance: instanceNameSchema,
  filename: fileNameSchema,
  size: z.number().int().nonnegative(),
  blake3: blake3Schema,
  kind: z.enum(['single', 'full', 'incremental']).nullable(),
  created_at: z.string(),
  base_backup_id: z.number().int().nullable(),
  source: JobSourceSchema,
  ticket: z.string(),
});
export type LeasedJob = z.infer<typeof LeasedJobSchema>;

export const LeaseResponseSchema = z.object({
  jobs: z.array(LeasedJobSchema),
  lease_seconds: z.number().int(),
});

export const JobProgressRequestSchema = z.strictObject({ bytes_done: z.number().int().nonnegative() });
export const JobCompleteRequestSchema = z.strictObject({
  /** Relative to the node's root: `<game_id>/<type>/<server_id>/<instance>/<filename>`. */
  path: z.string().min(1).max(4096),
  blake3: blake3Schema,
  size: z.number().int().nonnegative(),
});
export const JOB_FAILURE_CODES = [
  'checksum_mismatch',
  'size_mismatch',
  'source_missing',
  'transient',
] as const;
export const JobFailRequestSchema = z.strictObject({
  code: z.enum(JOB_FAILURE_CODES),
  error: z.string().min(1).max(4096),
});
export type JobFailureCode = (typeof JOB_FAILURE_CODES)[number];

/** Most stored copies one scrub lease or one scrub report carries. */
export const MAX_SCRUB_BATCH = 256;

/**
 * `POST /api/v1/nodes/scrub/lease` (DESIGN §11): the node asks for stored
 * copies to re-hash, those whose last check is older than `period_seconds`.
 */
export const ScrubLeaseRequestSchema = z.strictObject({
  /** The full pass period: a copy is due when its last check is older than this. */
  period_seconds: z
    .number()
    .int()
    .min(1)
    .max(10 * 365 * 86_400),
  limit: z.number().int().min(1).max(MAX_SCRUB_BATCH),
});

/** One stored copy to re-hash: its path relative to the node's root, as `complete` reported it. */
export const ScrubItemSchema = z.object({
  backup_id: z.number().int().positive(),
  path: z.string().min(1).max(4096),
  size: z.number().int().nonnegative(),
  blake3: blake3Schema,
});
export type ScrubItem = z.infer<typeof ScrubItemSchema>;

/** The node's copies that are due, least recently checked first (empty: nothing is due). */
export const ScrubLeaseResponseSchema = z.object({
  files: z.array(ScrubItemSchema).max(MAX_SCRUB_BATCH),
});

/**
 * What a re-hash found: `ok` (size and BLAKE3 as the catalog has them),
 * `mismatch` (BLAKE3 differs), `size_mismatch`, `missing` (no file at the
 * path), `unreadable` (the node cannot or will not read it: permissions, an
 * I/O error, not a regular file, a path leading out of its root).
 */
export const SCRUB_OUTCOMES = ['ok', 'mismatch', 'size_mismatch', 'missing', 'unreadable'] as const;
export type ScrubOutcome = (typeof SCRUB_OUTCOMES)[number];

export const ScrubResultSchema = z.strictObject({
  backup_id: z.number().int().positive(),
  outcome: z.enum(SCRUB_OUTCOMES),
  /** One line for people, e.g. `BLAKE3 differs (found …, expected …)`. */
  detail: z.string().max(1000).optional(),
});
export type ScrubResult = z.infer<typeof ScrubResultSchema>;

/** `POST /api/v1/nodes/scrub/results`: what the node found. */
export const ScrubResultsRequestSchema = z.strictObject({
  results: z.array(ScrubResultSchema).max(MAX_SCRUB_BATCH),
});
export const ScrubResultsResponseSchema = z.object({
  /** How many results counted (the others were not stored on this node, or are being deleted). */
  recorded: z.number().int().nonnegative(),
});
