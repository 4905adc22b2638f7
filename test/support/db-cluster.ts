import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BackupListItem } from '../../src/server/routes/backups.js';
import { type CliDaemon, type CliResult, runCli } from './cli-process.js';
import { type Cluster, startCluster } from './cluster.js';
import { createToken, readCatalog } from './process-catalog.js';
import { waitFor } from './wait-for.js';

/**
 * One database instance backed up the way a host does it, on top of cluster.ts: a `ubackup server`,
 * the host's agent whose one instance section runs a real backup script (`agent run-once` makes one
 * backup; `agent serve`, started after the first run, is the file server), one storage node `node-1`
 * that pulls, verifies and stores every backup and serves it back, and a viewer token for
 * `ubackup restore` and the API.
 *
 * cluster.ts writes every section as `back_type = mysql`, `instance = 400<i>` without a
 * `last_all_log`; this sets the section's type and instance and, for a full + incremental
 * chain (DESIGN §4 type 2), its `last_all_log`.
 */

/** The paths of the instance section; the script must write exactly these. */
export interface InstancePaths {
  backDir: string;
  backLog: string;
  /** Named in the section only when `chain` is set. */
  lastAllLog: string;
}

export interface DbClusterOptions {
  /** `back_type` and `instance`, as `ubackup restore --type --instance` names them. */
  type: string;
  instance: string;
  /** Full + incremental (type 2): the section names `last_all_log`. */
  chain: boolean;
  /** The section's `script` line (run with /bin/sh -c by the agent). */
  script(paths: InstancePaths): string;
}

export interface DbCluster {
  cluster: Cluster;
  paths: InstancePaths;
  serverId: string;
  type: string;
  instance: string;
  /** The storage node, its name and its `server_root_path`. */
  node: CliDaemon;
  nodeName: string;
  nodeRoot: string;
  /** A `viewer` API token (what `ubackup restore` needs). */
  token: string;
  /** Runs the instance once (`agent run-once`) and returns the backup it reported, from the API. */
  runBackup(): Promise<BackupListItem>;
  /** `GET /api/v1/backups` of the instance, oldest first. */
  backups(): Promise<BackupListItem[]>;
  /** Waits until each backup is stored and verified on the node (what a restore plan requires). */
  waitStored(ids: readonly number[]): Promise<void>;
  /** The absolute path of a stored backup's file on the node's disk (for tests that damage it). */
  storedFile(backupId: number): Promise<string>;
  /** `ubackup restore --server … --token … --server-id … --type … --instance … <extra>` with the built CLI. */
  restore(extra: string[]): Promise<CliResult>;
  /** Stops every process and removes the cluster's temp dir. */
  stop(): Promise<void>;
}

const SECTION = 'db0';
const NODE = 'node-1';
const SERVER_ID = '5001';

export async function startDbCluster(options: DbClusterOptions): Promise<DbCluster> {
  let paths: InstancePaths | undefined;
  const cluster = await startCluster('sqlite', {
    instances: 1,
    fileBytes: 0,
    script: (_i, backDir, backLog) => {
      paths = { backDir, backLog, lastAllLog: join(dirname(backLog), `${SECTION}_last_full.log`) };
      return options.script(paths);
    },
  });
  try {
    if (paths === undefined) throw new Error('startCluster did not ask for the script line');
    const section = paths;
    // The section as cluster.ts wrote it, with our type and instance (and last_all_log).
    const config = await readFile(cluster.agentConfig, 'utf8');
    const written = `[${SECTION}]\nback_type = mysql\ninstance = 4000\n`;
    if (config.split(written).length !== 2) {
      throw new Error(`${cluster.agentConfig} does not have the expected [${SECTION}] section:\n${config}`);
    }
    await writeFile(
      cluster.agentConfig,
      config.replace(
        written,
        [
          `[${SECTION}]`,
          `back_type = ${options.type}`,
          `instance = ${options.instance}`,
          ...(options.chain ? [`last_all_log = ${section.lastAllLog}`] : []),
          '',
        ].join('\n'),
      ),
    );

    const node = await cluster.startNode(NODE);
    await waitFor(
      () =>
        readCatalog(cluster.pc.location, async (catalog) => {
          const row = await catalog.db
            .selectFrom('nodes')
            .select('address')
            .where('name', '=', NODE)
            .executeTakeFirst();
          return row?.address ?? null;
        }),
      { timeoutMs: 30_000, intervalMs: 100, what: `${NODE}'s restore address in the catalog` },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\n--- ${NODE} ---\n${node.output()}`);
    });
    const token = await createToken(cluster.pc, 'viewer', 'restore');

    let serving: Promise<unknown> | undefined;
    const backups = async (): Promise<BackupListItem[]> => {
      const query = new URLSearchParams({
        server_id: SERVER_ID,
        type: options.type,
        instance: options.instance,
      });
      const res = await fetch(`${cluster.server.url}/api/v1/backups?${query}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (!res.ok) throw new Error(`GET /api/v1/backups: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { items: BackupListItem[] };
      return body.items.reverse();
    };

    return {
      cluster,
      paths: section,
      serverId: SERVER_ID,
      type: options.type,
      instance: options.instance,
      node,
      nodeName: NODE,
      nodeRoot: cluster.nodeRoot(NODE),
      token,
      backups,
      runBackup: async () => {
        const before = new Set((await backups()).map((b) => b.id));
        await cluster.runOnce();
        // The file server starts once the first run enrolled the host (`agent serve` never enrolls:
        // started before, it would back off while it waits for a credential).
        serving ??= cluster.serveFiles();
        await serving;
        // run-once returns once the report is delivered: the backup is in the catalog.
        const added = (await backups()).filter((b) => !before.has(b.id));
        if (added.length !== 1 || added[0] === undefined) {
          throw new Error(`run-once added ${added.length} backup(s), expected 1: ${JSON.stringify(added)}`);
        }
        return added[0];
      },
      waitStored: async (ids) => {
        await waitFor(
          () =>
            readCatalog(cluster.pc.location, async (catalog) => {
              const rows = await catalog.db
                .selectFrom('backups')
                .select(['id', 'stored_node', 'verified_at'])
                .where('id', 'in', [...ids])
                .execute();
              return (
                rows.length === ids.length &&
                rows.every((r) => r.stored_node === NODE && r.verified_at !== null)
              );
            }),
          { timeoutMs: 60_000, intervalMs: 200, what: `backups ${ids.join(', ')} to be stored on ${NODE}` },
        ).catch(async (error: unknown) => {
          throw new Error(
            `${String(error)}\njobs: ${JSON.stringify(await cluster.jobs())}\n--- ${NODE} ---\n${node.output()}`,
          );
        });
      },
      storedFile: (backupId) =>
        readCatalog(cluster.pc.location, async (catalog) => {
          const row = await catalog.db
            .selectFrom('backups')
            .select(['stored_node', 'stored_path'])
            .where('id', '=', backupId)
            .executeTakeFirstOrThrow();
          if (row.stored_node === null || row.stored_path === null) {
            throw new Error(`backup ${backupId} is not stored`);
          }
          return join(cluster.nodeRoot(row.stored_node), row.stored_path);
        }),
      restore: (extra) =>
        runCli([
          'restore',
          '--server',
          cluster.server.url,
          '--token',
          token,
          '--server-id',
          SERVER_ID,
          '--type',
          options.type,
          '--instance',
          options.instance,
          ...extra,
        ]),
      stop: () => cluster.stop(),
    };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/** `value` as one shell word (single quotes), for `--exec` command texts. */
export function shellWord(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
