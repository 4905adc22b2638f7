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
