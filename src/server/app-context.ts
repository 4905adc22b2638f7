import type { Logger } from 'pino';
import type { Catalog } from '../catalog/database.js';
import type { Clock } from '../shared/clock.js';
import type { IllegalReportPolicy } from './ingest-decision.js';

/** What every route needs: the catalog, the clock, the logger and the server's settings. */
export interface AppContext {
  catalog: Catalog;
  clock: Clock;
  log: Logger;
  policy: IllegalReportPolicy;
  maxAttempts: number;
  defaultClusterId: number;
}
