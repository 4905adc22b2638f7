import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from '../../src/agent/agent-metrics.js';
import type { CatalogDb } from '../../src/catalog/database.js';
import { createNodeMetrics } from '../../src/node/node-metrics.js';
import { createServerMetrics } from '../../src/server/metrics/server-metrics.js';

interface Target {
  expr: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  datasource?: { uid: string };
}

const root = join(import.meta.dirname, '../..');
const dashboard = JSON.parse(readFileSync(join(root, 'docs/grafana-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string }[] };
};

/** Every metric name the server, a node and an agent export (their own, not the process defaults). */
function exportedNames(): Set<string> {
  const registries = [
    createServerMetrics({ db: {} as CatalogDb, clock: () => new Date(), heartbeatSeconds: 5 }).registry,
    createNodeMetrics(() => ({
      transfersInFlight: 0,
      pausedByAdmin: false,
      pausedReserve: false,
      freeBytes: 0,
    })).registry,
    createAgentMetrics(async () => 0).registry,
  ];
  return new Set(registries.flatMap((r) => r.getMetricsAsArray().map((m) => m.name)));
}

describe('the Grafana dashboard', () => {
  const panels = dashboard.panels.filter((p) => p.type !== 'row');

  it('queries only metrics that are exported, and shows every exported ubackup metric', () => {
    const exported = exportedNames();
    const used = new Set<string>();
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        for (const name of target.expr.match(/\bubackup_[a-z_]+/g) ?? []) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          expect(exported, `${panel.title}: ${name}`).toContain(base);
          used.add(base);
        }
      }
    }
    const unused = [...exported].filter((name) => name.startsWith('ubackup_') && !used.has(name));
    expect(unused).toEqual([]);
  });

  it('takes its Prometheus data source from a variable', () => {
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
    for (const panel of panels) expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
  });

  it('documents every exported metric in operations.md', () => {
    const operations = readFileSync(join(root, 'docs/operations.md'), 'utf8');
    for (const name of exportedNames()) {
      if (name.startsWith('ubackup_')) expect(operations, name).toContain(`| \`${name}\` |`);
    }
  });
});
