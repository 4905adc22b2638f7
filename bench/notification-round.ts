/**
 * Notification benchmark: 2,000 alerts open at once (a cluster fails and every
 * instance goes overdue) with three webhook channels. Measures one
 * notification round (plan + queue, one transaction) and the delivery round
 * that sends what it queued to a real HTTP receiver on loopback, on SQLite
 * and PostgreSQL, and counts the messages each channel got (one digest each
 * is the point). Peer measured in the same run: reading the same 2,000 alert
 * rows with one plain query.
 *
 *   npm run bench:notify -- [--alerts 2000] [--runs 5] [--backend sqlite|postgres|both]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { openAlerts } from '../src/server/alerts/alert-store.js';
import { runDeliveryRound } from '../src/server/alerts/delivery-round.js';
import { runNotificationRound } from '../src/server/alerts/notification-round.js';
import { type BackendName, freshCatalog } from '../test/support/catalog-backends.js';
import { stopSharedPostgres } from '../test/support/postgres.js';

const { values } = parseArgs({
  options: {
    alerts: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'both' },
  },
});
const ALERTS = Number(values.alerts);
const RUNS = Number(values.runs);
const CHANNELS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function bench(backend: BackendName): Promise<void> {
  const received: number[] = [];
  const server = createServer((request, response) => {
    let bytes = 0;
    request.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    request.on('end', () => {
      received.push(bytes);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const fresh = await freshCatalog(backend);
  const db = fresh.catalog.db;
  try {
    const now = Date.now();
    for (let c = 0; c < CHANNELS; c += 1) {
      await db
        .insertInto('notification_channels')
        .values({
          name: `ops-${c}`,
          kind: 'webhook',
          config: JSON.stringify({
            kind: 'webhook',
            name: `ops-${c}`,
            filter: { businesses: [], types: [], minSeverity: 'info' },
            repeatSeconds: 0,
            settings: { url },
          }),
          enabled: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
    }
    await openAlerts(
      db,
      Array.from({ length: ALERTS }, (_, i) => ({
        type: 'overdue' as const,
        subject: `${100000 + i}/mysql/3306`,
        gameId: String(i % 40),
        summary: `no successful backup since 2026-11-25 04:00 UTC (due 2026-11-26 04:50 UTC)`,
      })),
      now,
    );
    const plan: number[] = [];
    const send: number[] = [];
    const peer: number[] = [];
    let messages = 0;
    for (let run = 0; run < RUNS; run += 1) {
      await db.deleteFrom('notification_marks').execute();
      await db.deleteFrom('notification_deliveries').execute();
      await db.updateTable('alerts').set({ notify_pending: 1 }).execute();
      received.length = 0;
      let t = performance.now();
      await db.selectFrom('alerts').selectAll().where('notify_pending', '=', 1).execute();
      peer.push(performance.now() - t);
      t = performance.now();
      const round = await runNotificationRound(db, now, {
        dashboardUrl: null,
        onInvalidChannel: () => undefined,
      });
      plan.push(performance.now() - t);
      messages = round.messagesQueued;
      t = performance.now();
      const sent = await runDeliveryRound(db, () => Date.now());
      send.push(performance.now() - t);
      if (sent.sent !== CHANNELS || received.length !== CHANNELS) {
        throw new Error(`expected one message per channel, sent ${sent.sent}, received ${received.length}`);
      }
    }
    const p = median(plan);
    const q = median(peer);
    console.log(
      `${backend.padEnd(8)} ${ALERTS} alerts, ${CHANNELS} channels → ${messages} messages (one digest per channel), ` +
        `largest ${Math.max(...received)} bytes`,
    );
    console.log(
      `  notification round median ${p.toFixed(1)} ms; delivery round median ${median(send).toFixed(1)} ms; ` +
        `peer (read the ${ALERTS} rows) ${q.toFixed(1)} ms; round ÷ peer ${(p / q).toFixed(1)}`,
    );
  } finally {
    await fresh.cleanup();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const backends: BackendName[] =
  values.backend === 'both' ? ['sqlite', 'postgres'] : [values.backend as BackendName];
try {
  for (const backend of backends) await bench(backend);
} finally {
  await stopSharedPostgres();
}
