import type { IncomingMessage } from 'node:http';
import { printable } from './printable.js';

/** Longest request target quoted in a log line. */
const MAX_LOGGED_TARGET_CHARS = 300;

/** `<method> <target> from <address>` for a log line, the target cut at MAX_LOGGED_TARGET_CHARS. */
export function summarizeRequest(request: IncomingMessage): string {
  const method = request.method ?? '';
  const target = request.url ?? '';
  const shown =
    target.length > MAX_LOGGED_TARGET_CHARS ? `${target.slice(0, MAX_LOGGED_TARGET_CHARS)}…` : target;
  const from = request.socket.remoteAddress ?? 'unknown address';
  return `${printable(method)} ${printable(shown)} from ${from}`;
}
