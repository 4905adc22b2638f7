import { type AlertNotice, severityRank } from '../alerts/alert-kind.js';
import type { ChannelFilter } from './channel-config.js';

/**
 * Whether a channel wants a notice. Every part of the filter must pass:
 *
 * - `businesses`: empty passes everything; otherwise the notice's business
 *   must be listed, so alerts that belong to no business (nodes, clusters)
 *   go only to channels without a business list.
 * - `types`: empty passes every type; otherwise the type must be listed.
 * - `minSeverity`: the notice's severity is this level or above.
 */
export function channelWants(filter: ChannelFilter, notice: AlertNotice): boolean {
  if (filter.businesses.length > 0 && !filter.businesses.includes(notice.gameId)) return false;
  if (filter.types.length > 0 && !filter.types.includes(notice.type)) return false;
  return severityRank(notice.severity) >= severityRank(filter.minSeverity);
}
