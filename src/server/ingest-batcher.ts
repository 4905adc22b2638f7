import type { Logger } from 'pino';
import type { CatalogDb } from '../catalog/database.js';
import type { Clock } from '../shared/clock.js';
import type { Report } from '../shared/report.js';
import {
  checkReportOwner,
  type IngestOutcome,
  type IngestResult,
  type IngestSettings,
  ingestReport,
  type ReportingHost,
  type Submission,
  storeReports,
} from './ingest.js';

interface Pending extends Submission {
  resolve(result: IngestResult): void;
  reject(error: unknown): void;
}

export interface IngestBatcherOptions {
  /** Most reports in one transaction. */
  maxBatch: number;
  /** Transactions in flight at once: 1 on SQLite (one writer), a few on PostgreSQL. */
  concurrency: number;
}

/**
 * Group commit. Reports that arrive while a transaction is being written wait
 * and are stored together in the next one; each is answered only after the
 * transaction that holds it has committed. A refusal (ApiError) of one report
 * writes nothing for it and does not disturb the others. If a batch fails for
 * any other reason it is rolled back and each of its reports is retried alone,
 * so one bad report cannot fail its neighbours.
 */
export class IngestBatcher {
  readonly #pending: Pending[] = [];
  #running = 0;
  #scheduled = false;

  constructor(
    private readonly db: CatalogDb,
    private readonly settings: IngestSettings,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: IngestBatcherOptions,
  ) {}

  submit(report: Report, host: ReportingHost): Promise<IngestResult> {
    checkReportOwner(report, host);
    return new Promise((resolve, reject) => {
      this.#pending.push({ report, host, resolve, reject });
      // Let the requests that are ready in this turn of the event loop join the same transaction.
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  #pump(): void {
    while (this.#running < this.options.concurrency && this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.options.maxBatch);
      this.#running += 1;
      void this.#write(batch).finally(() => {
        this.#running -= 1;
        this.#pump();
      });
    }
  }

  async #write(batch: Pending[]): Promise<void> {
    const started = performance.now();
    let outcomes: IngestOutcome[];
    try {
      outcomes = await this.db
        .transaction()
        .execute((trx) => storeReports(trx, batch, this.settings, this.clock().getTime()));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      this.log.warn(
        { err: error, reports: batch.length },
        'group commit failed; storing its reports one by one',
      );
      await Promise.all(
        batch.map((item) =>
          ingestReport(this.db, item, this.settings, this.clock().getTime()).then(item.resolve, item.reject),
        ),
      );
      return;
    }
    this.log.debug({ reports: batch.length, ms: Math.round(performance.now() - started) }, 'group commit');
    outcomes.forEach((outcome, i) => {
      const item = batch[i];
      if (!item) return;
      if (outcome.ok) item.resolve(outcome.result);
      else item.reject(outcome.error);
    });
  }
}
