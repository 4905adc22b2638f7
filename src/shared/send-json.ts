import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Answers with `value` as a JSON body that is never cached; a HEAD gets the headers only. */
export function sendJson(
  response: ServerResponse,
  status: number,
  value: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  // Node sends no body for HEAD whatever is passed here.
  response.end(body);
}
