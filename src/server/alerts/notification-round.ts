import type { Kysely } from 'kysely';
import type { AlertRow, CatalogSchema, NotificationChannelRow } from '../../catalog/schema.js';
import { IN_LIST_BATCH, INSERT_BATCH, inBatches } from '../../catalog/statement-batches.js';
import { type ChannelConfig, ChannelConfigSchema } from '../notify/channel-config.js';
import { planDispatch } from '../notify/dispatch-plan.js';
import type { AlertNotice, AlertState, AlertType, Severity } from './alert-kind.js';

/**
 * One notification round: turns the alerts that opened or resolved since the
 * last round (`alerts.notify_pending`) and the reminders that came due into
 * messages, one per alert or one digest per channel (`planDispatch`), and
 * queues them as deliveries. Sending is the delivery round's job, so a slow
 * or failing channel never holds up the others or the alert engine.
 *
 * A channel hears that an alert resolved only if it heard that it opened: an
 * alert that opened and resolved between two rounds stays quiet.
 */

type Db = Kysely<CatalogSchema>;

export interface StoredChannel {
  id: number;
  name: string;
  config: ChannelConfig;
}

export interface NotificationRoundOutcome {
  alertsSeen: number;
  messagesQueued: number;
}

const ALERTS_PER_ROUND = 5000;

/** The enabled channels whose stored configuration still parses (a bad one is skipped and named). */
export async function enabledChannels(
  db: Db,
  onInvalid: (channel: NotificationChannelRow, problem: string) => void,
): Promise<StoredChannel[]> {
  const rows = await db.selectFrom('notification_channels').selectAll().where('enabled', '=', 1).execute();
  const channels: StoredChannel[] = [];
  for (const row of rows) {
    const parsed = parseStoredChannel(row);
    if (typeof parsed === 'string') onInvalid(row, parsed);
    else channels.push(parsed);
  }
  return channels;
}

export function parseStoredChannel(row: NotificationChannelRow): StoredChannel | string {
  let json: unknown;
  try {
    json = JSON.parse(row.config);
  } catch (error) {
    return `its stored configuration is not JSON: ${String(error)}`;
  }
  const parsed = ChannelConfigSchema.safeParse(json);
  if (!parsed.success) return `its stored configuration is invalid: ${parsed.error.message}`;
  return { id: row.id, name: row.name, config: parsed.data };
}

export function alertNotice(row: AlertRow): AlertNotice {
  return {
    id: row.id,
    type: row.type as AlertType,
    severity: row.severity as Severity,
    subject: row.subject,
    gameId: row.game_id,
    state: row.state as AlertState,
    summary: row.summary,
    openedAt: row.opened_at,
    resolvedAt: row.state === 'resolved' ? row.resolved_at : null,
  };
}

export async function runNotificationRound(
  db: Db,
  nowMs: number,
  options: {
    dashboardUrl: string | null;
    onInvalidChannel: (channel: NotificationChannelRow, problem: string) => void;
  },
): Promise<NotificationRoundOutcome> {
  const channels = await enabledChannels(db, options.onInvalidChannel);
  return db.transaction().execute(async (trx) => {
    const pending = await trx
      .selectFrom('alerts')
      .selectAll()
      .where('notify_pending', '=', 1)
      .orderBy('id')
      .limit(ALERTS_PER_ROUND)
      .execute();
    let queued = 0;
    for (const channel of channels) {
      const told = await toldStates(
        trx,
        channel.id,
        pending.filter((a) => a.state === 'resolved').map((a) => a.id),
      );
      // Opened (and still unresolved) alerts, and resolutions of alerts this channel was told about.
      const notices = pending
        .filter((a) => a.state !== 'resolved' || told.get(a.id) === 'open')
        .map(alertNotice);
      const reminders = await dueReminders(trx, channel, nowMs);
      const planned = planDispatch(
        {
          channels: [{ id: channel.id, filter: channel.config.filter }],
          notices,
          reminders: new Map([[channel.id, reminders]]),
        },
        { nowMs, dashboardUrl: options.dashboardUrl },
      );
      for (const batch of inBatches(planned, INSERT_BATCH)) {
        await trx
          .insertInto('notification_deliveries')
          .values(
            batch.map((p) => ({
              channel_id: channel.id,
              created_at: nowMs,
              state: 'pending',
              attempts: 0,
              next_attempt_at: nowMs,
              alert_count: p.message.items.length,
              message: JSON.stringify(p.message),
            })),
          )
          .execute();
      }
      const marks = planned.flatMap((p) =>
        p.message.items.map((item) => ({
          channel_id: channel.id,
          alert_id: item.notice.id,
          notified_at: nowMs,
          told_state: item.event === 'resolved' ? 'resolved' : 'open',
        })),
      );
      for (const batch of inBatches(marks, INSERT_BATCH)) {
        await trx
          .insertInto('notification_marks')
          .values(batch)
          .onConflict((oc) =>
            oc.columns(['channel_id', 'alert_id']).doUpdateSet((eb) => ({
              notified_at: eb.ref('excluded.notified_at'),
              told_state: eb.ref('excluded.told_state'),
            })),
          )
          .execute();
      }
      queued += planned.length;
    }
    for (const ids of inBatches(
      pending.map((a) => a.id),
      IN_LIST_BATCH,
    )) {
      await trx.updateTable('alerts').set({ notify_pending: 0 }).where('id', 'in', ids).execute();
    }
    return { alertsSeen: pending.length, messagesQueued: queued };
  });
}

/** What the channel was last told about each of these alerts. */
async function toldStates(
  db: Db,
  channelId: number,
  alertIds: readonly number[],
): Promise<Map<number, string>> {
  const told = new Map<number, string>();
  for (const ids of inBatches(alertIds, IN_LIST_BATCH)) {
    const rows = await db
      .selectFrom('notification_marks')
      .select(['alert_id', 'told_state'])
      .where('channel_id', '=', channelId)
      .where('alert_id', 'in', ids)
      .execute();
    for (const r of rows) told.set(r.alert_id, r.told_state);
  }
  return told;
}

/** Open (unacknowledged) alerts the channel told about more than its repeat interval ago. */
async function dueReminders(db: Db, channel: StoredChannel, nowMs: number): Promise<AlertNotice[]> {
  const repeatMs = channel.config.repeatSeconds * 1000;
  if (repeatMs <= 0) return [];
  const rows = await db
    .selectFrom('notification_marks')
    .innerJoin('alerts', 'alerts.id', 'notification_marks.alert_id')
    .selectAll('alerts')
    .where('notification_marks.channel_id', '=', channel.id)
    .where('notification_marks.told_state', '=', 'open')
    .where('notification_marks.notified_at', '<=', nowMs - repeatMs)
    .where('alerts.state', '=', 'open')
    .orderBy('alerts.id')
    .limit(ALERTS_PER_ROUND)
    .execute();
  return rows.map(alertNotice);
}
