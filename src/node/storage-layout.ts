import { join } from 'node:path';
import { z } from 'zod';
import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
import {
  BACKUP_KINDS,
  blake3Schema,
  fileNameSchema,
  gameIdSchema,
  instanceNameSchema,
  serverIdSchema,
  typeNameSchema,
} from '../shared/report.js';

/**
 * Where a storage node keeps things under its root (DESIGN §9):
 *
 *   <root>/<game_id>/<type>/<server_id>/<instance>/<filename>              the stored file
 *   <root>/<game_id>/<type>/<server_id>/<instance>/<filename>.ubmeta.json  its sidecar
 *   <root>/.incoming/<job_id>.part                                         a transfer in progress
 *
 * Pure functions only; the writing is in part-file.ts.
 */

export const INCOMING_DIR = '.incoming';
export const PART_SUFFIX = '.part';
export const SIDECAR_SUFFIX = '.ubmeta.json';

export const LAYOUT_FIELDS = ['game_id', 'type', 'server_id', 'instance', 'filename'] as const;
export type LayoutField = (typeof LAYOUT_FIELDS)[number];

/** The identity of a stored file: the fields that become its path. */
export type StoredFileIdentity = Readonly<Record<LayoutField, string>>;

/**
 * Why a value cannot be a component of a stored path: one of the generic
 * path-component problems, or `reserved` — a name the node uses itself (the
 * `.incoming` directory at the top, or a file name in the sidecar namespace).
 */
export type LayoutProblem = NonNullable<ReturnType<typeof componentProblem>> | 'reserved';

export class StorageLayoutError extends Error {
  override readonly name = 'StorageLayoutError';
  constructor(
    readonly field: LayoutField | 'job_id',
    readonly problem: LayoutProblem | 'not_an_id',
    message: string,
  ) {
    super(message);
  }
}

function describeLayoutProblem(field: LayoutField, problem: LayoutProblem): string {
  if (problem !== 'reserved') return describeComponentProblem(problem);
  return field === 'filename'
    ? `contains "${SIDECAR_SUFFIX}", which is reserved for sidecar files`
    : `is "${INCOMING_DIR}", which is reserved for transfers in progress`;
}

/** The problem with `value` as the `field` component of a stored path, or null when it is fine. */
export function layoutProblem(field: LayoutField, value: string): LayoutProblem | null {
  const generic = componentProblem(value);
  if (generic !== null) return generic;
  // A stored file named like a sidecar would be taken for one by `node reindex`.
  if (field === 'filename' && value.includes(SIDECAR_SUFFIX)) return 'reserved';
  // Only the first component shares a directory with `.incoming`.
  if (field === 'game_id' && value === INCOMING_DIR) return 'reserved';
  return null;
}

/**
 * `<game_id>/<type>/<server_id>/<instance>/<filename>`, always with `/`, as the
 * node reports it in `complete`. Throws StorageLayoutError naming the first
 * field that cannot be a path component (traversal, separators, NUL, …).
 */
export function storedRelativePath(identity: StoredFileIdentity): string {
  for (const field of LAYOUT_FIELDS) {
    const value = identity[field];
    const problem = layoutProblem(field, value);
    if (problem !== null) {
      throw new StorageLayoutError(
        field,
        problem,
        `${field} ${JSON.stringify(value)} ${describeLayoutProblem(field, problem)}`,
      );
    }
  }
  return LAYOUT_FIELDS.map((field) => identity[field]).join('/');
}

/** The absolute path of a stored file: `root` joined with its relative path. */
export function storedAbsolutePath(root: string, relativePath: string): string {
  return join(root, ...relativePath.split('/'));
}

export function incomingDir(root: string): string {
  return join(root, INCOMING_DIR);
}

function checkJobId(jobId: number): void {
  if (!Number.isSafeInteger(jobId) || jobId < 0) {
    throw new StorageLayoutError(
      'job_id',
      'not_an_id',
      `job id ${String(jobId)} is not a non-negative integer`,
    );
  }
}

/** `<root>/.incoming/<jobId>.part`: where a transfer writes until it is verified. */
export function partPath(root: string, jobId: number): string {
  checkJobId(jobId);
  return join(incomingDir(root), `${jobId}${PART_SUFFIX}`);
}

/** `<root>/.incoming/<jobId>.ubmeta.tmp`: where a sidecar is written before it is renamed into place. */
export function sidecarTempPath(root: string, jobId: number): string {
  checkJobId(jobId);
  return join(incomingDir(root), `${jobId}.ubmeta.tmp`);
}

/** `<file>.ubmeta.json`. */
export function sidecarPath(filePath: string): string {
  return `${filePath}${SIDECAR_SUFFIX}`;
}

export function isSidecarPath(path: string): boolean {
  return path.endsWith(SIDECAR_SUFFIX);
}

/**
 * The metadata written next to every stored file, so `ubackup node reindex`
 * can rebuild the catalog from the disks alone (DESIGN §3 invariant 6).
 * Unknown keys are ignored on read, so a newer node's sidecars stay readable.
 */
export const SidecarSchema = z.object({
  backup_id: z.number().int(),
  report_id: z.string().min(1),
  blake3: blake3Schema,
  size: z.number().int().nonnegative(),
  created_at: z.string(),
  kind: z.enum(BACKUP_KINDS).nullable(),
  base_backup_id: z.number().int().nullable(),
  game_id: gameIdSchema,
  type: typeNameSchema,
  server_id: serverIdSchema,
  instance: instanceNameSchema,
  filename: fileNameSchema,
  /** When the node renamed the verified file into place (ISO 8601). */
  stored_at: z.string(),
});
export type Sidecar = z.infer<typeof SidecarSchema>;
