import type { KeyObject } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AgentLog } from '../agent/delivery.js';
import { bearerTicket } from '../shared/bearer-ticket.js';
import { answerRange, decideRange } from '../shared/byte-range.js';
import { describeError } from '../shared/describe-error.js';
import { type FileHttpServer, startFileHttpServer } from '../shared/file-http-server.js';
import { printable } from '../shared/printable.js';
import { summarizeRequest } from '../shared/request-summary.js';
import { sendFileRange } from '../shared/send-file-range.js';
import { sendJson } from '../shared/send-json.js';
import { type TicketClaims, type TicketProblem, verifyTicket } from '../shared/ticket.js';
import { openStoredFile, type StoredFileProblem } from './stored-file-lookup.js';

/**
 * The storage node's restore server (DESIGN §2, §6, §11): `ubackup restore`
 * downloads stored files from the node that holds them, with a restore ticket
 * the server signed.
 *
 *   GET|HEAD /v1/stored/<backup_id>
 *   Authorization: Bearer <ticket>
 *
 * A file is served only when the ticket verifies with the server's public key
 * (from the heartbeat reply), has not expired, is a `restore` ticket, is
 * addressed to this node, names the backup of the URL, and that backup's
 * stored file is found under the node's root as stored-file-lookup.ts
 * requires (valid components, real path inside the root, sidecar naming the
 * backup, size equal to the ticket's). It serves while the node is paused:
 * pauses stop leasing, not restores.
 *
 * Every error has the body `{"error":{"code","message"}}`:
 *   400 bad_path             the path is not /v1/stored/<backup id>
 *   401 no_ticket            no `Authorization: Bearer <ticket>`
 *   401 ticket_malformed | ticket_bad_signature | ticket_invalid_claims | ticket_expired
 *   403 wrong_purpose        not a restore ticket
 *   403 wrong_node           the ticket is for another node
 *   403 wrong_backup         the ticket is for another backup than the URL's
 *   403 invalid_path         a claim that cannot be a stored path component
 *   403 outside_root         the file resolves outside the node's root (a symlink out)
 *   403 not_a_file           the stored path is not a regular file
 *   404 not_found            an unknown route
 *   404 not_stored           the backup is not stored here
 *   405 method_not_allowed   other than GET and HEAD
 *   409 size_mismatch | checksum_mismatch | ambiguous   the stored file does not match the ticket
 *   416 range_not_satisfiable  a range starting at or past the end (Content-Range: bytes *\/size)
 *   500 read_error           the file cannot be read
 *   503 no_ticket_key        the node has not had the server's key yet (Retry-After)
 *
 * Ranges: one `bytes=N-`, `bytes=N-M` or `bytes=-N` gets 206 with
 * Content-Range; anything else gets the whole file. `X-Ubackup-Size` and
 * `X-Ubackup-Blake3` are the stored file's size and digest (its sidecar). No
 * directory is ever listed.
 */

export const STORED_ROUTE_PREFIX = '/v1/stored/';

export interface RestoreServerOptions {
  listen: { host: string; port: number };
  /** server_root_path. */
  root: string;
  /** This node's name: tickets for any other node are refused. */
  nodeName: string;
  /** The server's ticket key; null while unknown (every request gets 503). */
  publicKey: () => KeyObject | null;
  /** Epoch-ms clock for ticket expiry; default Date.now. */
  now?: () => number;
  log: AgentLog;
}

/** The bound port, and close: stops listening, cuts open connections and waits for the handlers. */
export type RestoreServer = FileHttpServer;

/** The backup id of `/v1/stored/<id>` (query ignored), or null. */
export function parseStoredPath(
  target: string,
): { ok: true; backupId: number } | { ok: false; status: 400 | 404 } {
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  if (!path.startsWith(STORED_ROUTE_PREFIX)) return { ok: false, status: 404 };
  const rest = path.slice(STORED_ROUTE_PREFIX.length);
  if (!/^[1-9]\d{0,15}$/.test(rest)) return { ok: false, status: 400 };
  const backupId = Number(rest);
  return Number.isSafeInteger(backupId) ? { ok: true, backupId } : { ok: false, status: 400 };
}

const TICKET_CODES: Record<TicketProblem, string> = {
  malformed: 'ticket_malformed',
  bad_signature: 'ticket_bad_signature',
  invalid_claims: 'ticket_invalid_claims',
  expired: 'ticket_expired',
};

const TICKET_MESSAGES: Record<TicketProblem, string> = {
  malformed: 'the ticket is malformed',
  bad_signature:
    "the ticket's signature does not verify with the server's key (altered, or from another server)",
  invalid_claims: "the ticket's claims are invalid",
  expired: 'the ticket has expired: fetch a new restore plan',
};

const LOOKUP_STATUS: Record<StoredFileProblem, number> = {
  invalid_path: 403,
  not_stored: 404,
  outside_root: 403,
  not_a_file: 403,
  ambiguous: 409,
  size_mismatch: 409,
  checksum_mismatch: 409,
  read_error: 500,
};

function sendError(
  response: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: OutgoingHttpHeaders = {},
): void {
  sendJson(response, status, { error: { code, message } }, headers);
}

export async function startRestoreServer(options: RestoreServerOptions): Promise<RestoreServer> {
  const { log, root, nodeName, publicKey } = options;
  const now = options.now ?? Date.now;

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const method = request.method ?? '';
    const target = request.url ?? '';
    let claims: TicketClaims | null = null;
    const describeRequest = (): string => summarizeRequest(request);
    const refuse = (
      status: number,
      code: string,
      message: string,
      headers: OutgoingHttpHeaders = {},
    ): void => {
      const line = `restore server: ${status} ${code} for ${describeRequest()}: ${printable(message)}`;
      if (status >= 500) log.error(line);
      else log.warn(line);
      sendError(response, status, code, message, headers);
    };

    if (method !== 'GET' && method !== 'HEAD') {
      refuse(405, 'method_not_allowed', `method ${printable(method)} is not allowed`, { allow: 'GET, HEAD' });
      return;
    }
    const parsed = parseStoredPath(target);
    if (!parsed.ok) {
      if (parsed.status === 404) refuse(404, 'not_found', 'no such route (GET /v1/stored/<backup id>)');
      else refuse(400, 'bad_path', 'the path is not /v1/stored/<backup id>');
      return;
    }
    const ticket = bearerTicket(request.headers.authorization);
    if (ticket === null) {
      refuse(401, 'no_ticket', 'no "Authorization: Bearer <restore ticket>" header', {
        'www-authenticate': 'Bearer',
      });
      return;
    }
    const key = publicKey();
    if (key === null) {
      refuse(503, 'no_ticket_key', "this node has not received the server's ticket key yet: retry shortly", {
        'retry-after': '5',
      });
      return;
    }
    const check = verifyTicket(ticket, key, now());
    if (!check.ok) {
      refuse(401, TICKET_CODES[check.problem], TICKET_MESSAGES[check.problem], {
        'www-authenticate': 'Bearer',
      });
      return;
    }
    claims = check.claims;
    if (claims.purpose !== 'restore') {
      refuse(403, 'wrong_purpose', `the ticket is for ${claims.purpose}, not for a restore`);
      return;
    }
    if (claims.node !== nodeName) {
      refuse(
        403,
        'wrong_node',
        `the ticket is for node ${printable(claims.node)}, and this is node ${nodeName}`,
      );
      return;
    }
    if (claims.backup_id !== parsed.backupId) {
      refuse(
        403,
        'wrong_backup',
        `the URL names backup ${parsed.backupId} but the ticket names backup ${claims.backup_id}`,
      );
      return;
    }
    const opened = await openStoredFile(root, claims);
    if (!opened.ok) {
      refuse(LOOKUP_STATUS[opened.problem], opened.problem, opened.reason);
      return;
    }

    const file: FileHandle = opened.handle;
    const { size } = opened;
    const range = decideRange(request.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      await file.close();
      refuse(
        416,
        'range_not_satisfiable',
        `the range "${printable(request.headers.range ?? '')}" is outside the file (${size} bytes)`,
        { 'content-range': `bytes */${size}` },
      );
      return;
    }
    const { status, start, length, headers: rangeHeaders, description } = answerRange(range, size);
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      ...rangeHeaders,
      'x-ubackup-size': size,
      'x-ubackup-blake3': opened.sidecar.blake3,
      'last-modified': opened.mtime.toUTCString(),
      'cache-control': 'no-store',
    };
    const what = `backup ${claims.backup_id} ${opened.relativePath} ${description}`;
    const progress = { bytesRead: 0 };
    try {
      await sendFileRange(
        file,
        response,
        { status, headers, start, length, headOnly: method === 'HEAD' },
        progress,
      );
      log.info(
        `restore server: ${status} for ${describeRequest()}: ${method === 'HEAD' ? 'described' : 'sent'} ${what}`,
      );
    } catch (error) {
      log.warn(
        `restore server: sending ${what} to ${describeRequest()} stopped after ${progress.bytesRead} bytes read: ${describeError(error)}`,
      );
    }
  };

  return startFileHttpServer({
    listen: options.listen,
    name: 'restore server',
    log,
    handle,
    answerFailure: (response) => sendError(response, 500, 'read_error', 'the node could not serve the file'),
  });
}
