import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { AgentLog } from '../agent/delivery.js';
import { blake3File } from '../shared/blake3.js';
import { callServer } from './node-client.js';
import { loadConfigOrThrow } from './node-daemon.js';
import { readNodeState } from './node-state.js';
import { readSidecar } from './part-file.js';
import {
  INCOMING_DIR,
  LAYOUT_FIELDS,
  SIDECAR_SUFFIX,
  type Sidecar,
  StorageLayoutError,
  sidecarPath,
  storedRelativePath,
} from './storage-layout.js';

/**
 * `ubackup node reindex` (DESIGN §3 invariant 6): walks the node's root,
 * pairs every stored file with its sidecar, checks that the pair is whole and
 * where its sidecar says (and with `--verify` re-hashes the file with
 * BLAKE3), and sends the good pairs to `POST /api/v1/nodes/reindex` in
 * batches, so the catalog learns again where each file is.
 *
 * Nothing is deleted or moved. What is not sent is reported: a file without a
 * sidecar (the leftover of a crash between storing and the sidecar, or a
 * transfer finishing right now), a sidecar without its file, a sidecar that is
 * not valid or names another place, a file whose size or BLAKE3 differs from
 * its sidecar, anything outside the layout. Safe to run again, and while the
 * node daemon runs.
 */

export const REINDEX_BATCH_SIZE = 500;
/** One batch of 500 on a busy PostgreSQL takes well under this. */
const REINDEX_REQUEST_TIMEOUT_MS = 120_000;
const SEND_ATTEMPTS = 3;

export class NodeReindexError extends Error {
  override name = 'NodeReindexError';
}

export type ReindexProblemKind =
  | 'no_sidecar'
  | 'no_file'
  | 'invalid_sidecar'
  | 'misplaced'
  | 'size_mismatch'
  | 'checksum_mismatch'
  | 'not_a_file'
  | 'outside_layout'
  | 'unreadable';

export interface ReindexProblem {
  /** Relative to the root, with `/`. */
  path: string;
  kind: ReindexProblemKind;
  detail: string;
}

/** The server's answer per batch (src/server/routes/reindex.ts), as the node reads it. */
const ReindexConflictSchema = z.object({
  path: z.string(),
  report_id: z.string(),
  backup_id: z.number(),
  reason: z.string(),
  stored_node: z.string().nullable(),
  stored_path: z.string().nullable(),
  message: z.string(),
});
export type ReindexConflict = z.infer<typeof ReindexConflictSchema>;

const ReindexAnswerSchema = z.object({
  updated: z.number(),
  inserted: z.number(),
  unchanged: z.number(),
  conflicts: z.array(ReindexConflictSchema),
});

export interface ReindexSummary {
  node: string;
  root: string;
  verified: boolean;
  /** Regular files under the root that are not sidecars (outside `.incoming`). */
  files: number;
  /** Pairs sent to the server. */
  sent: number;
  updated: number;
  inserted: number;
  unchanged: number;
  conflicts: ReindexConflict[];
  /** What was not sent, and why. */
  problems: ReindexProblem[];
}

export interface ReindexNodeOptions {
  configPath: string;
  log: AgentLog;
  /** Re-hash every file and compare with its sidecar's BLAKE3 before sending it. */
  verify: boolean;
  batchSize?: number;
}

interface Entry {
  path: string;
  sidecar: Sidecar;
}

/** Directory depth of the stored files: `<game_id>/<type>/<server_id>/<instance>/`. */
const FILE_DEPTH = LAYOUT_FIELDS.length - 1;

const parsesAsTime = (value: string) => Number.isFinite(Date.parse(value));

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function reindexNode(options: ReindexNodeOptions): Promise<ReindexSummary> {
  const { log, verify } = options;
  const batchSize = options.batchSize ?? REINDEX_BATCH_SIZE;
  const config = await loadConfigOrThrow(options.configPath, log);
  const state = await readNodeState(config.stateDir);
  if (state === null || state.name !== config.name) {
    throw new NodeReindexError(
      `node ${config.name} has no credential in ${config.stateDir}: start "ubackup node --config ${options.configPath}" once so it enrolls, then run reindex again`,
    );
  }
  const root = config.rootPath;
  const summary: ReindexSummary = {
    node: state.name,
    root,
    verified: verify,
    files: 0,
    sent: 0,
    updated: 0,
    inserted: 0,
    unchanged: 0,
    conflicts: [],
    problems: [],
  };
  const problem = (path: string, kind: ReindexProblemKind, detail: string): void => {
    summary.problems.push({ path, kind, detail });
    log.warn(`not indexed: ${path}: ${detail}`);
  };

  let pending: Entry[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const entries = pending;
    pending = [];
    const answer = await send(config.serverUrl, state.credential, entries, verify, log);
    summary.sent += entries.length;
    summary.updated += answer.updated;
    summary.inserted += answer.inserted;
    summary.unchanged += answer.unchanged;
    for (const c of answer.conflicts) {
      summary.conflicts.push(c);
      log.warn(`conflict: ${c.path}: ${c.message}`);
    }
    log.info(
      `reindex: ${summary.sent} sent so far (${summary.updated} updated, ${summary.inserted} inserted, ${summary.unchanged} unchanged, ${summary.conflicts.length} conflicts)`,
    );
  };

  /** A pair of a stored file and its sidecar: sent when whole and in its place. */
  const examine = async (relative: string, absolute: string, size: number): Promise<void> => {
    const sidecar = await readSidecar(sidecarPath(absolute)).catch((error: unknown) => {
      problem(relative, 'unreadable', `cannot read its sidecar: ${errorText(error)}`);
      return undefined;
    });
    if (sidecar === undefined) return;
    if (sidecar === null) {
      problem(relative, 'invalid_sidecar', `${SIDECAR_SUFFIX} is not a valid sidecar (bad JSON or fields)`);
      return;
    }
    if (!parsesAsTime(sidecar.created_at) || !parsesAsTime(sidecar.stored_at)) {
      problem(relative, 'invalid_sidecar', "the sidecar's created_at or stored_at is not a time");
      return;
    }
    let expected: string;
    try {
      expected = storedRelativePath(sidecar);
    } catch (error) {
      if (!(error instanceof StorageLayoutError)) throw error;
      problem(relative, 'invalid_sidecar', `the sidecar's ${error.message}`);
      return;
    }
    if (expected !== relative) {
      problem(relative, 'misplaced', `its sidecar describes ${expected}, not this path`);
      return;
    }
    if (size !== sidecar.size) {
      problem(relative, 'size_mismatch', `the file has ${size} bytes, its sidecar says ${sidecar.size}`);
      return;
    }
    if (verify) {
      const digest = await blake3File(absolute).catch((error: unknown) => {
        problem(relative, 'unreadable', `cannot read the file: ${errorText(error)}`);
        return null;
      });
      if (digest === null) return;
      if (digest.blake3 !== sidecar.blake3 || digest.size !== sidecar.size) {
        problem(
          relative,
          'checksum_mismatch',
          `BLAKE3 of the file is ${digest.blake3} (${digest.size} bytes), its sidecar says ${sidecar.blake3}: the file is damaged`,
        );
        return;
      }
    }
    pending.push({ path: relative, sidecar });
    if (pending.length >= batchSize) await flush();
  };

  /** The files of one `<game_id>/<type>/<server_id>/<instance>` directory. */
  const visitLeaf = async (dir: string, components: readonly string[], entries: Dirent[]): Promise<void> => {
    const files = new Set<string>();
    const sidecars = new Set<string>();
    for (const entry of entries) {
      const relative = [...components, entry.name].join('/');
      if (entry.isDirectory()) problem(relative, 'outside_layout', 'a directory where stored files belong');
      else if (!entry.isFile())
        problem(relative, 'not_a_file', 'not a regular file (symlinks are not followed)');
      else if (entry.name.endsWith(SIDECAR_SUFFIX)) sidecars.add(entry.name);
      else files.add(entry.name);
    }
    for (const name of [...files].sort()) {
      summary.files += 1;
      const relative = [...components, name].join('/');
      const absolute = join(dir, name);
      if (!sidecars.has(`${name}${SIDECAR_SUFFIX}`)) {
        problem(
          relative,
          'no_sidecar',
          'no sidecar: the leftover of a crash between storing the file and writing its sidecar (or a transfer finishing right now)',
        );
        continue;
      }
      const stats = await lstat(absolute).catch((error: unknown) => {
        problem(relative, 'unreadable', errorText(error));
        return null;
      });
      if (stats === null) continue;
      await examine(relative, absolute, stats.size);
    }
    for (const name of [...sidecars].sort()) {
      if (!files.has(name.slice(0, -SIDECAR_SUFFIX.length))) {
        problem([...components, name].join('/'), 'no_file', 'a sidecar without its file');
      }
    }
  };

  const visit = async (dir: string, components: readonly string[]): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      problem(components.join('/') || '.', 'unreadable', `cannot list the directory: ${errorText(error)}`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (components.length === FILE_DEPTH) {
      await visitLeaf(dir, components, entries);
      return;
    }
    for (const entry of entries) {
      if (components.length === 0 && entry.name === INCOMING_DIR) continue;
      const relative = [...components, entry.name].join('/');
      if (entry.isDirectory()) await visit(join(dir, entry.name), [...components, entry.name]);
      else if (entry.isFile()) {
        if (!entry.name.endsWith(SIDECAR_SUFFIX)) summary.files += 1;
        problem(relative, 'outside_layout', `not at <game_id>/<type>/<server_id>/<instance>/<filename>`);
      } else problem(relative, 'not_a_file', 'not a regular file or directory (symlinks are not followed)');
    }
  };

  log.info(`reindex of node ${state.name}: walking ${root}${verify ? ' (re-hashing every file)' : ''}`);
  await visit(root, []);
  await flush();
  return summary;
}

/** Sends one batch; retries network errors and 5xx, stops on anything else. */
async function send(
  serverUrl: string,
  credential: string,
  entries: Entry[],
  verified: boolean,
  log: AgentLog,
): Promise<z.infer<typeof ReindexAnswerSchema>> {
  for (let attempt = 1; ; attempt += 1) {
    const answer = await callServer(
      serverUrl,
      credential,
      'api/v1/nodes/reindex',
      { entries, verified },
      ReindexAnswerSchema,
      { timeoutMs: REINDEX_REQUEST_TIMEOUT_MS },
    );
    if (answer.ok) return answer.data;
    const retry = answer.status === null || answer.status >= 500;
    if (retry && attempt < SEND_ATTEMPTS) {
      log.warn(`reindex batch failed (${answer.code}: ${answer.message}); retrying`);
      await sleep(1000 * 2 ** (attempt - 1));
      continue;
    }
    const hint =
      answer.status === 401
        ? ': the server does not know this node\'s credential (was the catalog recreated?): remove the node-state.json in state_dir, set enroll_token to a token of this catalog, start "ubackup node" so it enrolls, then run reindex again'
        : '';
    throw new NodeReindexError(
      `the server refused a reindex batch: ${answer.code}: ${answer.message}${hint}`,
    );
  }
}

/** The lines `ubackup node reindex` prints at the end; at most `limit` problems and conflicts are listed. */
export function formatReindexSummary(summary: ReindexSummary, limit = 50): string {
  const notSent = summary.problems.length;
  const lines = [
    `node ${summary.node}: ${summary.files} file(s) under ${summary.root}${summary.verified ? ', re-hashed' : ''}; ` +
      `${summary.sent} sent: ${summary.updated} updated, ${summary.inserted} inserted, ${summary.unchanged} unchanged, ` +
      `${summary.conflicts.length} conflict(s); ${notSent} problem(s), not indexed`,
  ];
  const items = [
    ...summary.conflicts.map((c) => `  conflict ${c.reason}: ${c.path}: ${c.message}`),
    ...summary.problems.map((p) => `  ${p.kind}: ${p.path}: ${p.detail}`),
  ];
  lines.push(...items.slice(0, limit));
  if (items.length > limit) lines.push(`  … and ${items.length - limit} more (see the log)`);
  return `${lines.join('\n')}\n`;
}
