import type { Catalog } from '../catalog/database.js';
import { recordAudit } from '../server/audit.js';
import { AdminInputError } from './create-user.js';

/**
 * Forgets a host's credential so that it can enroll again (a reinstalled
 * host, a lost state_dir). Its backups and registry entries are untouched.
 * A server keeps trusting a credential it saw in the last 10 s.
 */
export async function resetHost(catalog: Catalog, serverId: string, nowMs: number): Promise<void> {
  await catalog.db.transaction().execute(async (trx) => {
    const host = await trx
      .selectFrom('hosts')
      .select(['id', 'credential_hash'])
      .where('server_id', '=', serverId)
      .executeTakeFirst();
    if (!host) throw new AdminInputError(`no host with server_id ${serverId} has enrolled`);
    await trx.updateTable('hosts').set({ credential_hash: null }).where('id', '=', host.id).execute();
    await recordAudit(trx, {
      at: nowMs,
      actor: 'admin-cli',
      action: 'host.reset',
      subject: `host:${serverId}`,
    });
  });
}

/** Forgets a storage node's credential so that it can enroll again; what it stored stays recorded. */
export async function resetNode(catalog: Catalog, name: string, nowMs: number): Promise<void> {
  await catalog.db.transaction().execute(async (trx) => {
    const node = await trx.selectFrom('nodes').select('id').where('name', '=', name).executeTakeFirst();
    if (!node) throw new AdminInputError(`no storage node named ${name} has enrolled`);
    await trx.updateTable('nodes').set({ credential_hash: null }).where('id', '=', node.id).execute();
    await recordAudit(trx, { at: nowMs, actor: 'admin-cli', action: 'node.reset', subject: `node:${name}` });
  });
}
