import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * prom-client's default process metrics (CPU, memory, event loop lag, GC,
 * handles), collected once per process: they describe the process, not an
 * app, and each collection starts an event-loop monitor and a GC observer
 * that are never stopped, so several apps in one process share this one.
 */
let shared: Registry | null = null;

export function processMetricsRegistry(): Registry {
  if (shared === null) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}

/** A registry with `own`'s metrics and the process metrics, for serving. */
export function withProcessMetrics(own: Registry): Registry {
  return Registry.merge([own, processMetricsRegistry()]);
}
