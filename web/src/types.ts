/** The shapes the API answers, as the dashboard reads them. */
import type { AlertState } from '../../src/server/alerts/alert-kind';
import type { Role } from './api';

/** The server's own alert vocabulary (pure data, bundled as it is). */
export { ALERT_TYPES, type AlertState } from '../../src/server/alerts/alert-kind';

export interface Alert {
  id: number;
  type: string;
  severity: string;
  subject: string;
  business: string;
  state: AlertState;
  summary: string;
  opened_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  ack_comment: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
  last_event_at: string;
  followed: boolean;
}

export interface AlertSummary {
  followed: { open: number; acknowledged: number; by_type: Record<string, number> };
  others_open: number;
  others_acknowledged: number;
  total_open: number;
  total_acknowledged: number;
  following: boolean;
}

export interface Instance {
  id: number;
  name: string;
  server_id: string;
  type: string;
  instance: string;
  game_id: string;
  cluster: string;
  priority: 'critical' | 'high' | 'normal' | 'low';
  schedule: string | null;
  interval_seconds: number;
  timezone: string;
  grace_seconds: number;
  retention_days: number | null;
  keep_fulls: number | null;
  paused: boolean;
  muted_until: string | null;
  last_success_at: string | null;
  last_report_at: string | null;
  next_due_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface ImportResult {
  created: number;
  duplicate: number;
  malformed: number;
  lines: { line: number; text: string; status: 'created' | 'duplicate' | 'malformed'; message?: string }[];
}

export interface Backup {
  id: number;
  report_id: string;
  server_id: string;
  type: string;
  instance: string;
  game_id: string;
  status: 'ok' | 'failed';
  storage_node: string | null;
  host_ip: string;
  backup_time: string;
  stored_time: string | null;
  file_name: string | null;
  size: number | null;
  full_time: string | null;
  full_name: string | null;
  log: string;
  error: string | null;
  blake3: string | null;
  kind: 'single' | 'full' | 'incremental' | null;
  legality: 'legal' | 'illegal';
  illegal_reason: string | null;
  transfer_state: string | null;
  verified_at: string | null;
  scrub_error: string | null;
  deleted_at: string | null;
  permanent: boolean;
}

export interface NodeView {
  id: number;
  name: string;
  cluster: string;
  address: string | null;
  state: string;
  weight: number;
  max_bandwidth: number;
  paused_by_admin: boolean;
  reserve_bytes: number;
  disk_total_bytes: number | null;
  disk_free_bytes: number | null;
  in_flight: number;
  bytes_per_second: number;
  version: string | null;
  last_heartbeat_at: string | null;
}

export interface ClusterSummary {
  id: number;
  name: string;
  description: string;
  node_count: number;
  queue: { critical: number; high: number; normal: number; low: number };
  oldest_queued_at: string | null;
  total_bytes: number;
  free_bytes: number;
}

export interface Overview {
  since: string;
  backups_today: number;
  bytes_today: number;
  failures_today: number;
  open_alerts: number;
  queue: { depth: number; oldest_queued_at: string | null; oldest_wait_seconds: number | null };
  clusters: { id: number; name: string; total_bytes: number; free_bytes: number }[];
  latest: {
    id: number;
    status: string;
    game_id: string;
    type: string;
    instance: string;
    server_id: string;
    host_ip: string;
    filename: string | null;
    size: number | null;
    log: string;
    created_at: string;
  }[];
}

export interface Business {
  id: number;
  game_id: string;
  name: string;
  retention_days: number | null;
  keep_fulls: number | null;
  created_at: string;
}

export interface BackupType {
  id: number;
  name: string;
  description: string;
  retention_days: number | null;
  keep_fulls: number | null;
  created_at: string;
}

export interface User {
  id: number;
  name: string;
  role: Role;
  disabled: boolean;
  locale: string;
  created_at: string;
}

export interface ApiToken {
  id: number;
  name: string;
  role: Role;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  token?: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  detail: unknown;
}

/** Sums every statistics answer carries (bytes stored, transfer time in seconds). */
export interface StatsSums {
  backups: number;
  failures: number;
  bytes: number;
  transfer_seconds: number;
  transfers: number;
  deleted: number;
  deleted_bytes: number;
}

export interface StatsTotals extends StatsSums {
  from: string;
  to: string;
}

export interface StatsDaily {
  from: string;
  to: string;
  by: 'business' | 'node' | 'type';
  items: (StatsSums & { day: string; key: string })[];
  /** With `top`: per day, the sums of the keys folded away and how many they were. */
  other?: (StatsSums & { day: string; keys: number })[];
}

/** The sums of one row of a daily series, kept or folded. */
export type StatsDailySums = StatsSums & { day: string };

export interface StatsShare {
  from: string;
  to: string;
  items: { game_id: string; backups: number; bytes: number; backups_share: number; bytes_share: number }[];
}

export interface StatsThroughput {
  from: string;
  to: string;
  items: {
    day: string;
    node: string;
    bytes: number;
    transfers: number;
    transfer_seconds: number;
    bytes_per_second: number | null;
  }[];
}

export interface StatsQueue {
  from: string;
  to: string;
  clusters: {
    cluster: string;
    depth: number;
    minutes: { minute: string; enqueued: number; done: number; dead: number; depth: number }[];
  }[];
}

export interface StatsTopFailing {
  items: {
    game_id: string;
    server_id: string;
    type: string;
    instance: string;
    failures: number;
    last_failure_at: string;
  }[];
}

export interface StatsSlowest {
  items: {
    job_id: number;
    backup_id: number;
    game_id: string;
    server_id: string;
    type: string;
    instance: string;
    cluster: string;
    node: string;
    size: number;
    transfer_seconds: number;
    finished_at: string;
  }[];
}
