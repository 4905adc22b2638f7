import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { fsyncDir } from '../shared/fsync-dir.js';

/**
 * What the agent remembers between runs, in `<state_dir>/agent-state.json`
 * (mode 0600, written atomically): its credential from enrollment, the
 * server's public key that signs pull tickets (DESIGN §6), and per
 * instance the last full backup it reported, so an incremental's report can
 * say when its base full was made (DESIGN §4: the old client's third line of
 * last_all_log is not trusted).
 */

export const STATE_FILE_NAME = 'agent-state.json';

const FullRecordSchema = z.object({
  filename: z.string().min(1),
  createdAt: z.iso.datetime({ offset: true }),
});

const StateFileSchema = z.object({
  version: z.literal(1),
  credential: z
    .object({
      serverId: z.string(),
      serverUrl: z.string(),
      secret: z.string().min(1),
      enrolledAt: z.string(),
    })
    .nullable(),
  /** The server's ticket-signing key: base64 SPKI DER (`exportPublicKey`). Absent in older files. */
  ticketKey: z
    .object({ publicKey: z.string().min(1), receivedAt: z.string() })
    .nullable()
    .default(null),
  /** type → instance → last full. */
  fulls: z.record(z.string(), z.record(z.string(), FullRecordSchema)),
});

type StateFile = z.infer<typeof StateFileSchema>;

export interface FullRecord {
  filename: string;
  /** ISO time: the full's report created_at. */
  createdAt: string;
}

/** An instance's identity on this host (DESIGN §6: server_id / type / instance). */
export interface InstanceKey {
  type: string;
  instance: string;
}

export interface OpenAgentStateResult {
  state: AgentState;
  /** Problems found while loading (e.g. a corrupt file set aside); the caller logs them. */
  warnings: string[];
}

function emptyState(): StateFile {
  return { version: 1, credential: null, ticketKey: null, fulls: {} };
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Writes `content` to `path` atomically: a temp file in the same directory
 * (mode `mode`), fsync, rename over `path`, fsync of the directory.
 */
export async function writeFileAtomic(path: string, content: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = `${path}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dir);
}

/** The state file's content, or null when it is missing or unreadable (the caller keeps what it has). */
async function readStateFile(path: string): Promise<StateFile | null> {
  try {
    const parsed = StateFileSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * The agent's state. Another agent process may share the state directory
 * (`run-once` from cron or by hand next to the daemon), so every change
 * re-reads the file, applies itself and writes the result, and `lastFull`
 * reads the file; changes within one process are serialized.
 */
export class AgentState {
  private data: StateFile;
  /** Changes are serialized so the file always ends with the newest state. */
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly stateDir: string,
    data: StateFile,
  ) {
    this.data = data;
  }

  get path(): string {
    return join(this.stateDir, STATE_FILE_NAME);
  }

  /**
   * Loads the state (creating `state_dir`, mode 0700, if needed). A missing
   * file is an empty state; a corrupt one is renamed to
   * `agent-state.json.corrupt-<ms>` and reported in `warnings`, so backups keep
   * running (the agent then enrolls again if it has an enroll_token).
   */
  static async open(stateDir: string, nowMs: number = Date.now()): Promise<OpenAgentStateResult> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const path = join(stateDir, STATE_FILE_NAME);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if (errnoCode(error) === 'ENOENT')
        return { state: new AgentState(stateDir, emptyState()), warnings: [] };
      throw new Error(`cannot read the agent state ${path}: ${describeError(error)}`);
    }
    let problem: string;
    try {
      const parsed = StateFileSchema.safeParse(JSON.parse(text));
      if (parsed.success) return { state: new AgentState(stateDir, parsed.data), warnings: [] };
      problem = parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
        .join('; ');
    } catch (error) {
      problem = `not JSON (${describeError(error)})`;
    }
    const aside = `${path}.corrupt-${nowMs}`;
    await rename(path, aside);
    await fsyncDir(stateDir);
    return {
      state: new AgentState(stateDir, emptyState()),
      warnings: [`the agent state ${path} is corrupt (${problem}); moved it to ${aside} and started afresh`],
    };
  }

  /**
   * The credential, if this host enrolled as `serverId`. (A changed server_url
   * keeps it: the same server is often renamed; a different server answers 401.)
   */
  credentialFor(serverId: string): string | null {
    const credential = this.data.credential;
    if (credential === null || credential.serverId !== serverId) return null;
    return credential.secret;
  }

  /** The stored credential with what it was issued for, or null. */
  storedCredential(): { serverId: string; serverUrl: string; enrolledAt: string } | null {
    const credential = this.data.credential;
    return credential === null
      ? null
      : { serverId: credential.serverId, serverUrl: credential.serverUrl, enrolledAt: credential.enrolledAt };
  }

  async setCredential(
    serverId: string,
    serverUrl: string,
    secret: string,
    enrolledAt: string,
  ): Promise<void> {
    await this.update((data) => ({ ...data, credential: { serverId, serverUrl, secret, enrolledAt } }));
  }

  /** The server's ticket-signing public key (base64 SPKI DER) as last received, or null. */
  ticketPublicKey(): string | null {
    return this.data.ticketKey?.publicKey ?? null;
  }

  async setTicketPublicKey(publicKey: string, receivedAt: string = new Date().toISOString()): Promise<void> {
    await this.update((data) => ({ ...data, ticketKey: { publicKey, receivedAt } }));
  }

  /**
   * Re-reads the file, so what another agent process stored (a credential
   * from `run-once`'s enrollment, a ticket key) becomes visible. What the file
   * lacks is kept from memory; an unreadable file changes nothing.
   */
  reload(): Promise<void> {
    const run = async (): Promise<void> => {
      const onDisk = await readStateFile(this.path);
      if (onDisk === null) return;
      this.data = {
        ...this.data,
        credential: onDisk.credential ?? this.data.credential,
        ticketKey: onDisk.ticketKey ?? this.data.ticketKey,
        fulls: onDisk.fulls,
      };
    };
    // In the queue of changes, so a reload never lands between a change and its write.
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * The last full reported for the instance (by this or another agent process
   * on the state directory), or null (e.g. the first run after install).
   */
  async lastFull(key: InstanceKey): Promise<FullRecord | null> {
    const onDisk = await readStateFile(this.path);
    if (onDisk !== null) this.data = { ...this.data, fulls: onDisk.fulls };
    const record = this.data.fulls[key.type]?.[key.instance];
    return record === undefined ? null : { filename: record.filename, createdAt: record.createdAt };
  }

  /** Remembers a full; kept in memory even when saving fails (the error is thrown). */
  async recordFull(key: InstanceKey, full: FullRecord): Promise<void> {
    await this.update((data) => ({
      ...data,
      fulls: { ...data.fulls, [key.type]: { ...(data.fulls[key.type] ?? {}), [key.instance]: { ...full } } },
    }));
  }

  /** Re-reads the file, applies `change`, and writes the result (atomically, mode 0600). */
  private update(change: (data: StateFile) => StateFile): Promise<void> {
    const run = async (): Promise<void> => {
      const onDisk = await readStateFile(this.path);
      this.data = change(onDisk ?? this.data);
      await writeFileAtomic(this.path, `${JSON.stringify(this.data, null, 2)}\n`, 0o600);
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
