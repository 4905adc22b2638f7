import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/**
 * The typed catalog schema. Times are epoch milliseconds (INTEGER / BIGINT) so
 * SQLite and PostgreSQL sort and compare them the same way; flags are 0/1.
 */
type Id = Generated<number>;
type Millis = number;

export interface BusinessTable {
  id: Id;
  game_id: string;
  name: string;
  created_at: Millis;
  /** Retention for the business's instances when neither instance nor type sets it (null: not set). */
  retention_days: ColumnType<number | null, number | null | undefined, number | null>;
  keep_fulls: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface BackupTypeTable {
  id: Id;
  name: string;
  description: string;
  created_at: Millis;
  /** Retention for instances of this type that do not set their own (null: not set). */
  retention_days: ColumnType<number | null, number | null | undefined, number | null>;
  keep_fulls: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface ClusterTable {
  id: Id;
  name: string;
  description: string;
  created_at: Millis;
}

export interface HostTable {
  id: Id;
  server_id: string;
  ip: string | null;
  agent_version: string | null;
  credential_hash: string | null;
  enrolled_at: Millis | null;
  last_seen_at: Millis | null;
  created_at: Millis;
  /** The agent's file server port (null: none announced yet). */
  pull_port: number | null;
  pull_tls: ColumnType<number, number | undefined, number>;
}

export interface InstanceTable {
  id: Id;
  server_id: string;
  type: string;
  instance: string;
  name: string;
  game_id: string;
  cluster_id: number;
  priority: string;
  /** Cron expression; null means every `interval_seconds`. */
  schedule: string | null;
  interval_seconds: number;
  timezone: string;
  grace_seconds: number;
  retention_days: number | null;
  /** Keep at least this many fulls however old (null: the type's, business's or default). */
  keep_fulls: ColumnType<number | null, number | null | undefined, number | null>;
  paused: ColumnType<number, number | undefined, number>;
  next_due_at: Millis | null;
  last_success_at: Millis | null;
  /** Alerts for this instance stay quiet until then. */
  muted_until: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** A run the agent announced and has not reported yet, and when it counts as stuck. */
  run_started_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  run_deadline_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  last_report_at: Millis | null;
  created_at: Millis;
  updated_at: Millis;
}

export interface BackupTable {
  id: Id;
  report_id: string;
  instance_id: number | null;
  server_id: string;
  type: string;
  instance: string;
  section: string;
  /** The business the report claimed (agent config's game_id). */
  reported_game_id: string;
  /** The business the backup belongs to: the registry's when registered, else the reported one. */
  game_id: string;
  cluster_id: number;
  host_ip: string;
  created_at: Millis;
  finished_at: Millis;
  received_at: Millis;
  status: string;
  kind: string | null;
  filename: string | null;
  size: number | null;
  blake3: string | null;
  base_filename: string | null;
  base_created_at: Millis | null;
  base_backup_id: number | null;
  log: string;
  error: string | null;
  exit_code: number | null;
  output_tail: string;
  legality: string;
  illegal_reason: string | null;
  priority: string;
  agent_version: string;
  stored_node: string | null;
  stored_path: string | null;
  stored_at: Millis | null;
  verified_at: Millis | null;
  deleted_at: Millis | null;
  /** 1: retention never deletes it. */
  permanent: ColumnType<number, number | undefined, number>;
  transport: ColumnType<string, string | undefined, string>;
  rsync_model: string | null;
  /** 1 until the alert engine has looked at this backup. */
  alert_pending: ColumnType<number, number | undefined, number>;
  /**
   * Retention decided to delete the stored copy (pending while set). When the node confirms,
   * `deleted_at` is set and this is cleared, so the pending ones are all a node's index range holds.
   */
  delete_requested_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  delete_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** When the stored copy was last found whole (a transfer's verification counts). */
  scrubbed_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** Why the last scrub found the stored copy not whole (`verified_at` is then null). */
  scrub_error: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface TransferJobTable {
  id: Id;
  backup_id: number;
  cluster_id: number;
  /** Priority rank: 0 = critical … 3 = low. */
  priority: number;
  state: string;
  attempts: number;
  max_attempts: number;
  size: number;
  enqueued_at: Millis;
  next_attempt_at: Millis;
  lease_node: string | null;
  lease_expires_at: Millis | null;
  bytes_done: number;
  last_error: string | null;
  updated_at: Millis;
  /** When the current (or last) lease began. */
  leased_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>;
  /** How long the completing lease took (set when done). */
  transfer_ms: ColumnType<number | null, number | null | undefined, number | null>;
}

/** A statistics rollup row (`daily_stats`, `hourly_stats`): one bucket × business × type × node. */
export interface StatsRollupTable {
  /** Start of the UTC day or hour of the backups' created_at. */
  bucket: Millis;
  game_id: string;
  type: string;
  /** The node that stores the backups; '' for those not stored (failed, queued, dead). */
  node: string;
  /** Spreads concurrent writers over a few rows (0 on SQLite); readers sum over it. */
  shard: ColumnType<number, number | undefined, number>;
  backups: number;
  failures: number;
  bytes: number;
  transfer_ms: number;
  transfers: number;
  deleted: number;
  deleted_bytes: number;
}

/** Transfer jobs per minute (of the event) and cluster. */
export interface QueueStatsTable {
  minute: Millis;
  cluster_id: number;
  shard: ColumnType<number, number | undefined, number>;
  enqueued: number;
  done: number;
  dead: number;
}

export interface UserTable {
  id: Id;
  name: string;
  role: string;
  password_hash: string;
  disabled: ColumnType<number, number | undefined, number>;
  created_at: Millis;
  /** The dashboard's language: en-US | zh-CN. */
  locale: ColumnType<string, string | undefined, string>;
  /** IANA zone the dashboard shows times in. */
  time_zone: ColumnType<string, string | undefined, string>;
}

export interface SessionTable {
  id: Id;
  user_id: number;
  /** SHA-256 (hex) of the cookie's secret. */
  secret_hash: string;
  csrf_token: string;
  created_at: Millis;
  last_seen_at: Millis;
  /** The absolute end, whatever the activity. */
  expires_at: Millis;
}

export interface TokenTable {
  id: Id;
  name: string;
  role: string;
  token_hash: string;
  user_id: number | null;
  created_at: Millis;
  expires_at: Millis | null;
  revoked_at: Millis | null;
  last_used_at: Millis | null;
}

export interface AuditLogTable {
  id: Id;
  at: Millis;
  actor: string;
  action: string;
  subject: string;
  detail: string;
}

export interface NodeTable {
  id: Id;
  name: string;
  cluster_id: number;
  credential_hash: string | null;
  address: string | null;
  weight: number;
  /** Node-wide bytes/s; 0 = unlimited. */
  max_bandwidth: ColumnType<number, number | undefined, number>;
  paused_by_admin: ColumnType<number, number | undefined, number>;
  reserve_bytes: ColumnType<number, number | undefined, number>;
  disk_total_bytes: number | null;
  disk_free_bytes: number | null;
  in_flight: ColumnType<number, number | undefined, number>;
  bytes_per_second: ColumnType<number, number | undefined, number>;
  /** new | active | paused_reserve | paused_admin */
  state: ColumnType<string, string | undefined, string>;
  version: string | null;
  last_heartbeat_at: Millis | null;
  enrolled_at: Millis | null;
  created_at: Millis;
}

export interface ServerKeyTable {
  id: number;
  public_key: string;
  private_key: string;
  created_at: Millis;
}

export interface AlertTable {
  id: Id;
  type: string;
  subject: string;
  game_id: string;
  severity: string;
  /** open | acknowledged | resolved */
  state: string;
  summary: string;
  opened_at: Millis;
  acknowledged_at: Millis | null;
  acknowledged_by: string | null;
  ack_comment: string | null;
  resolved_at: Millis | null;
  resolved_by: string | null;
  last_event_at: Millis;
  /** 1 after it opened or resolved, until the notifier has looked at it. */
  notify_pending: ColumnType<number, number | undefined, number>;
}

export interface AlertEventTable {
  id: Id;
  alert_id: number;
  at: Millis;
  /** opened | acknowledged | resolved | commented | updated */
  kind: string;
  actor: string;
  detail: string;
}

export interface UserFocusTable {
  user_id: number;
  game_id: string;
}

export interface NotificationChannelTable {
  id: Id;
  name: string;
  kind: string;
  config: string;
  enabled: ColumnType<number, number | undefined, number>;
  created_at: Millis;
  updated_at: Millis;
}

export interface NotificationDeliveryTable {
  id: Id;
  channel_id: number;
  created_at: Millis;
  /** pending | sent | failed */
  state: string;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Millis;
  last_error: string | null;
  sent_at: Millis | null;
  alert_count: number;
  message: string;
}

export interface NotificationMarkTable {
  channel_id: number;
  alert_id: number;
  notified_at: Millis;
  /** open | resolved */
  told_state: string;
}

export interface CatalogSchema {
  businesses: BusinessTable;
  backup_types: BackupTypeTable;
  clusters: ClusterTable;
  hosts: HostTable;
  instances: InstanceTable;
  backups: BackupTable;
  transfer_jobs: TransferJobTable;
  users: UserTable;
  sessions: SessionTable;
  tokens: TokenTable;
  audit_log: AuditLogTable;
  nodes: NodeTable;
  server_keys: ServerKeyTable;
  alerts: AlertTable;
  alert_events: AlertEventTable;
  user_focus: UserFocusTable;
  notification_channels: NotificationChannelTable;
  notification_deliveries: NotificationDeliveryTable;
  notification_marks: NotificationMarkTable;
  daily_stats: StatsRollupTable;
  hourly_stats: StatsRollupTable;
  queue_stats: QueueStatsTable;
}

export type BackupRow = Selectable<BackupTable>;
export type NewBackup = Insertable<BackupTable>;
export type NewTransferJob = Insertable<TransferJobTable>;
export type InstanceRow = Selectable<InstanceTable>;
export type NewInstance = Insertable<InstanceTable>;
export type InstanceUpdate = Updateable<InstanceTable>;
export type HostRow = Selectable<HostTable>;
export type NodeRow = Selectable<NodeTable>;
export type TokenRow = Selectable<TokenTable>;
export type UserRow = Selectable<UserTable>;
export type AlertRow = Selectable<AlertTable>;
export type NotificationChannelRow = Selectable<NotificationChannelTable>;
