import type { Kysely } from 'kysely';
import type { CatalogSchema } from '../../catalog/schema.js';
import { type DeliveryResult, deliver } from '../notify/deliver.js';
import { nextDeliveryAttempt } from '../notify/delivery-retry.js';
import type { NotifyMessage } from '../notify/notify-message.js';
import { parseStoredChannel } from './notification-round.js';

/**
 * Sends the queued deliveries that are due, a few at a time. A delivery that
 * fails with a retryable error waits with backoff (`nextDeliveryAttempt`);
 * one that cannot succeed (a 4xx, a refused login) or that ran out of
 * attempts is `failed`, with its error, for the API and the log.
 */

type Db = Kysely<CatalogSchema>;

export interface DeliveryRoundOutcome {
  sent: number;
  retrying: number;
  failed: { deliveryId: number; channel: string; error: string }[];
}

const DELIVERIES_PER_ROUND = 50;
const PARALLEL_SENDS = 4;
export const DELIVERY_TIMEOUT_MS = 15_000;

/** Told of each attempt: the channel's kind and how the attempt ended (for the metrics). */
export type DeliveryAttemptListener = (channelKind: string, outcome: 'sent' | 'retrying' | 'failed') => void;

export async function runDeliveryRound(
  db: Db,
  nowMs: () => number,
  onAttempt: DeliveryAttemptListener = () => undefined,
): Promise<DeliveryRoundOutcome> {
  const due = await db
    .selectFrom('notification_deliveries')
    .innerJoin('notification_channels', 'notification_channels.id', 'notification_deliveries.channel_id')
    .select([
      'notification_deliveries.id',
      'notification_deliveries.attempts',
      'notification_deliveries.message',
      'notification_channels.id as channel_id',
      'notification_channels.name',
      'notification_channels.kind',
      'notification_channels.config',
      'notification_channels.enabled',
      'notification_channels.created_at',
      'notification_channels.updated_at',
    ])
    .where('notification_deliveries.state', '=', 'pending')
    .where('notification_deliveries.next_attempt_at', '<=', nowMs())
    .orderBy('notification_deliveries.next_attempt_at')
    .limit(DELIVERIES_PER_ROUND)
    .execute();
  const outcome: DeliveryRoundOutcome = { sent: 0, retrying: 0, failed: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const row = due[next];
      next += 1;
      if (row === undefined) return;
      const channel = parseStoredChannel({
        id: row.channel_id,
        name: row.name,
        kind: row.kind,
        config: row.config,
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
      });
      const result: DeliveryResult =
        typeof channel === 'string'
          ? { ok: false, error: `channel ${row.name}: ${channel}`, retryable: false }
          : await deliver(channel.config, JSON.parse(row.message) as NotifyMessage, {
              nowMs: nowMs(),
              timeoutMs: DELIVERY_TIMEOUT_MS,
            });
      const at = nowMs();
      const attempts = row.attempts + 1;
      if (result.ok) {
        await db
          .updateTable('notification_deliveries')
          .set({ state: 'sent', attempts, sent_at: at, last_error: null })
          .where('id', '=', row.id)
          .execute();
        outcome.sent += 1;
        onAttempt(row.kind, 'sent');
        continue;
      }
      const retry = result.retryable ? nextDeliveryAttempt(attempts, at) : { state: 'failed' as const };
      await db
        .updateTable('notification_deliveries')
        .set(
          retry.state === 'retry'
            ? { attempts, last_error: result.error, next_attempt_at: retry.at }
            : { state: 'failed', attempts, last_error: result.error },
        )
        .where('id', '=', row.id)
        .execute();
      if (retry.state === 'retry') outcome.retrying += 1;
      else outcome.failed.push({ deliveryId: row.id, channel: row.name, error: result.error });
      onAttempt(row.kind, retry.state === 'retry' ? 'retrying' : 'failed');
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_SENDS }, worker));
  return outcome;
}
