import type { ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { describeError } from './describe-error.js';
import { type FileHttpServer, startFileHttpServer } from './file-http-server.js';
import { sendJson } from './send-json.js';

/**
 * A listener that serves `GET /metrics` (Prometheus text format) without
 * authentication and nothing else: every other path is 404. It is meant for
 * a loopback or private address only (`--metrics-listen`, `metrics_listen`).
 */

export const METRICS_PATH = '/metrics';

export interface MetricsListenerOptions {
  listen: { host: string; port: number };
  registry: Registry;
  /** Log prefix, e.g. `metrics`. */
  name: string;
  log: { error(message: string): void };
}

/** The request target without its query string. */
function pathOf(target: string): string {
  const question = target.indexOf('?');
  return question === -1 ? target : target.slice(0, question);
}

function notFound(response: ServerResponse): void {
  sendJson(response, 404, { error: 'not_found', message: `only ${METRICS_PATH} is served here` });
}

export async function startMetricsListener(options: MetricsListenerOptions): Promise<FileHttpServer> {
  const { registry, log, name } = options;
  return startFileHttpServer({
    listen: options.listen,
    name,
    log,
    handle: async (request, response) => {
      if (pathOf(request.url ?? '') !== METRICS_PATH) {
        notFound(response);
        return;
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        sendJson(response, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
        return;
      }
      let body: string;
      try {
        body = await registry.metrics();
      } catch (error) {
        log.error(`${name}: cannot collect the metrics: ${describeError(error)}`);
        sendJson(response, 500, { error: 'internal', message: 'cannot collect the metrics; see the log' });
        return;
      }
      response.writeHead(200, {
        'content-type': registry.contentType,
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      });
      response.end(body);
    },
    answerFailure: (response) => sendJson(response, 500, { error: 'internal' }),
  });
}
