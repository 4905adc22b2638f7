import { type Kysely, type Migration, sql } from 'kysely';
import { type CatalogDialect, columnTypes } from '../dialect.js';

/**
 * Alerts with their history, what each user follows, notification channels and
 * their deliveries, the engine's cursors, and the instance columns the
 * overdue / stuck / mute rules read (DESIGN §10).
 */
export function alertsMigration(dialect: CatalogDialect): Migration {
  const t = columnTypes(dialect);
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('alerts')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('game_id', 'text', (c) => c.notNull())
        .addColumn('severity', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('summary', 'text', (c) => c.notNull())
        .addColumn('opened_at', t.bigint, (c) => c.notNull())
        .addColumn('acknowledged_at', t.bigint)
        .addColumn('acknowledged_by', 'text')
        .addColumn('ack_comment', 'text')
        .addColumn('resolved_at', t.bigint)
        .addColumn('resolved_by', 'text')
        .addColumn('last_event_at', t.bigint, (c) => c.notNull())
        /** 1 after it opened or resolved, until the notifier has looked at it. */
        .addColumn('notify_pending', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      // One alert per (type, subject) while it is not resolved.
      await db.schema
        .createIndex('alerts_one_open')
        .on('alerts')
        .columns(['type', 'subject'])
        .unique()
        .where(sql.ref('state'), '<>', 'resolved')
        .execute();
      await db.schema
        .createIndex('alerts_state_business')
        .on('alerts')
        .columns(['state', 'game_id'])
        .execute();
      await db.schema.createIndex('alerts_last_event').on('alerts').column('last_event_at').execute();
      await db.schema
        .createIndex('alerts_notify_pending')
        .on('alerts')
        .column('id')
        .where(sql.ref('notify_pending'), '=', 1)
        .execute();

      await db.schema
        .createTable('alert_events')
        .addColumn('id', t.id, (c) => c.primaryKey())
        // No foreign key: events are written only with their alert, in its transaction, and alerts are
        // never deleted. On PostgreSQL the key's per-row check, planned while `alerts` was small, scanned
        // the whole table for each event of a burst.
        .addColumn('alert_id', t.bigint, (c) => c.notNull())
        .addColumn('at', t.bigint, (c) => c.notNull())
        /** opened | acknowledged | resolved | commented | updated */
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('alert_events_alert')
        .on('alert_events')
        .columns(['alert_id', 'at'])
        .execute();

      await db.schema
        .createTable('user_focus')
        .addColumn('user_id', t.bigint, (c) => c.notNull().references('users.id'))
        .addColumn('game_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('user_focus_pk', ['user_id', 'game_id'])
        .execute();

      await db.schema
        .createTable('notification_channels')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('kind', 'text', (c) => c.notNull())
        /** The channel as JSON (settings, filter, repeat), secrets included: never returned by the API. */
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('notification_deliveries')
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('channel_id', t.bigint, (c) => c.notNull().references('notification_channels.id'))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        /** pending | sent | failed */
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', t.bigint, (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('sent_at', t.bigint)
        .addColumn('alert_count', 'integer', (c) => c.notNull())
        /** The message as JSON (title, text, alert ids). */
        .addColumn('message', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('notification_deliveries_due')
        .on('notification_deliveries')
        .columns(['state', 'next_attempt_at'])
        .execute();
      await db.schema
        .createIndex('notification_deliveries_channel')
        .on('notification_deliveries')
        .columns(['channel_id', 'created_at'])
        .execute();

      // When each channel last told about each open alert (for repeat reminders).
      await db.schema
        .createTable('notification_marks')
        .addColumn('channel_id', t.bigint, (c) => c.notNull().references('notification_channels.id'))
        // No foreign key to alerts, for the same reason as alert_events.
        .addColumn('alert_id', t.bigint, (c) => c.notNull())
        .addColumn('notified_at', t.bigint, (c) => c.notNull())
        /** The alert state the channel was last told: open | resolved */
        .addColumn('told_state', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('notification_marks_pk', ['channel_id', 'alert_id'])
        .execute();

      await db.schema.alterTable('instances').addColumn('muted_until', t.bigint).execute();
      await db.schema.alterTable('instances').addColumn('run_started_at', t.bigint).execute();
      await db.schema.alterTable('instances').addColumn('run_deadline_at', t.bigint).execute();
      await db.schema
        .createIndex('instances_run_deadline')
        .on('instances')
        .column('run_deadline_at')
        .execute();
      // Every new backup waits for the alert engine once; the backups stored before alerts existed do not.
      await db.schema
        .alterTable('backups')
        .addColumn('alert_pending', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await sql`update backups set alert_pending = 0`.execute(db);
      await db.schema
        .createIndex('backups_alert_pending')
        .on('backups')
        .column('id')
        .where(sql.ref('alert_pending'), '=', 1)
        .execute();
    },
  };
}
