import type { Priority } from '../shared/priority.js';
import type { Report } from '../shared/report.js';

/** What the registry says of the instance a report names, if it is registered. */
export interface RegistryEntry {
  instanceId: number;
  gameId: string;
  clusterId: number;
  priority: Priority;
}

export type IllegalReportPolicy = 'accept' | 'reject';

export interface IngestContext {
  report: Report;
  registered: RegistryEntry | null;
  /** Whether the business the report claims exists in the registry. */
  reportedBusinessKnown: boolean;
  defaultClusterId: number;
  policy: IllegalReportPolicy;
}

export type IngestDecision =
  | { action: 'reject'; code: 'instance_not_registered'; message: string }
  | {
      action: 'store';
      legality: 'legal' | 'illegal';
      illegalReason: string | null;
      instanceId: number | null;
      gameId: string;
      clusterId: number;
      priority: Priority;
      enqueue: boolean;
    };

export function identityOf(report: Pick<Report, 'server_id' | 'type' | 'instance'>): string {
  return `${report.server_id}/${report.type}/${report.instance}`;
}

/**
 * Decides how a report is stored: which business, cluster and priority it gets
 * from the registry, whether it is legal (and why not), and whether its file is
 * queued. Unregistered instances go to the default cluster so some node takes
 * their files; under the `reject` policy they are refused instead.
 */
export function decideIngest(ctx: IngestContext): IngestDecision {
  const { report, registered } = ctx;
  const reasons: string[] = [];
  if (!registered) {
    const message = `instance ${identityOf(report)} is not registered`;
    if (ctx.policy === 'reject') return { action: 'reject', code: 'instance_not_registered', message };
    reasons.push(message);
  } else if (registered.gameId !== report.game_id) {
    reasons.push(
      `business mismatch: the agent reports game_id ${report.game_id}, the registry says ${registered.gameId}`,
    );
  }
  if (!ctx.reportedBusinessKnown)
    reasons.push(`unknown business: game_id ${report.game_id} is not registered`);
  return {
    action: 'store',
    legality: reasons.length === 0 ? 'legal' : 'illegal',
    illegalReason: reasons.length === 0 ? null : reasons.join('; '),
    instanceId: registered?.instanceId ?? null,
    gameId: registered?.gameId ?? report.game_id,
    clusterId: registered?.clusterId ?? ctx.defaultClusterId,
    priority: report.priority ?? registered?.priority ?? 'normal',
    enqueue: report.status === 'ok',
  };
}
