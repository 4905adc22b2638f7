import type { KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse, STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { bearerTicket } from '../shared/bearer-ticket.js';
import { answerRange, decideRange } from '../shared/byte-range.js';
import { describeError } from '../shared/describe-error.js';
import { errnoCode } from '../shared/errno-code.js';
import { type FileHttpServer, startFileHttpServer } from '../shared/file-http-server.js';
import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
import { printable } from '../shared/printable.js';
import { summarizeRequest } from '../shared/request-summary.js';
import { isClientGone, sendFileRange } from '../shared/send-file-range.js';
import { sendJson } from '../shared/send-json.js';
import { isStrictlyInside } from '../shared/strictly-inside.js';
import { MAX_TICKET_CHARS, type TicketClaims, type TicketProblem, verifyTicket } from '../shared/ticket.js';
import type { AgentLog } from './delivery.js';

/**
 * The agent's file server (DESIGN §3, §6): storage nodes pull reported backup
 * files from it with a pull ticket the server signed.
 *
 *   GET|HEAD /v1/files/<server_id>/<type>/<instance>/<filename>
 *   Authorization: Bearer <ticket>
 *
 * A file is served only when the ticket verifies with the server's public key,
 * is a `pull` ticket, has not expired, is addressed to this host, names exactly
 * the file of the URL, for an instance configured on this host, and the file's
 * real path is a regular file strictly inside the real path of that instance's
 * back_dir (a symlink that stays inside is followed; one that leaves is refused).
 *
 * Answers, each error with the body `{"error":"<status word>"}` and nothing
 * else (the reason goes to the agent's log, with the node named in the ticket):
 *   200 / 206  the file / one range of it (Content-Range)
 *   400        a path that is not four valid components
 *   401        no ticket, a malformed, forged or expired one, or no key yet
 *   403        a valid ticket that does not allow this file here
 *   404        the file (or back_dir) does not exist; an unknown route
 *   405        a method other than GET and HEAD
 *   416        a single range that starts past the end of the file
 *   500        the file cannot be read (e.g. permissions)
 *
 * Ranges: one `bytes=a-b`, `bytes=a-` or `bytes=-n` is honoured. Several
 * ranges, other units and a malformed header are ignored (200 with the whole
 * file), as RFC 9110 §14.2 allows: a node that resumes asks for one range and
 * checks for 206. There is no ETag (the ticket's blake3 is what the file was
 * when reported, not necessarily what it is now); `Last-Modified` is sent and
 * an `If-Range` equal to it keeps the range, anything else gets the whole file.
 * `X-Ubackup-Size` is the file's size now. The server never writes or deletes.
 */

export const FILE_ROUTE_PREFIX = '/v1/files/';

export interface FileServerInstance {
  type: string;
  instance: string;
  /** Absolute, as configured. */
  backDir: string;
}

export interface FileServerOptions {
  listen: { host: string; port: number };
  /** PEM contents of the certificate and its key: HTTPS. Null: plain HTTP. */
  tls: { cert: string; key: string } | null;
  /** This host's server_id: tickets for any other host are refused. */
  serverId: string;
  instances: readonly FileServerInstance[];
  /** The server's ticket-signing key; null while unknown (then every request gets 401). */
  publicKey: () => KeyObject | null;
  /** Epoch-ms clock for ticket expiry; default Date.now. */
  now?: () => number;
  log: AgentLog;
  /** Told of each GET answered with the file: bytes read, and whether all of it was sent. */
  onServed?: (bytes: number, whole: boolean) => void;
}

/** The bound port, and close: stops listening, cuts open connections (a node resumes with Range) and waits for the handlers. */
export type FileServer = FileHttpServer;

// ---------------------------------------------------------------------------
// Pure parts

export interface FilePath {
  serverId: string;
  type: string;
  instance: string;
  filename: string;
}

export type FilePathParse = { ok: true; path: FilePath } | { ok: false; status: 400 | 404; reason: string };

const COMPONENT_NAMES = ['server_id', 'type', 'instance', 'filename'] as const;

/**
 * The four components of a request target under FILE_ROUTE_PREFIX, each
 * percent-decoded exactly once and then held to the rules of a path component
 * (no `/`, `\`, NUL, control characters, `.` or `..`, at most 255 bytes). The
 * query string is ignored.
 */
export function parseFilePath(target: string): FilePathParse {
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  if (!path.startsWith(FILE_ROUTE_PREFIX)) return { ok: false, status: 404, reason: 'no such route' };
  const raw = path.slice(FILE_ROUTE_PREFIX.length).split('/');
  if (raw.length !== COMPONENT_NAMES.length) {
    return {
      ok: false,
      status: 400,
      reason: `the path has ${raw.length} segment(s) after ${FILE_ROUTE_PREFIX}, not ${COMPONENT_NAMES.length}`,
    };
  }
  const decoded: string[] = [];
  for (const [index, segment] of raw.entries()) {
    const name = COMPONENT_NAMES[index] ?? 'component';
    let value: string;
    try {
      value = decodeURIComponent(segment);
    } catch {
      return { ok: false, status: 400, reason: `${name} is not valid percent-encoded UTF-8` };
    }
    const problem = componentProblem(value);
    if (problem !== null) {
      return { ok: false, status: 400, reason: `${name} ${describeComponentProblem(problem)}` };
    }
    decoded.push(value);
  }
  const [serverId = '', type = '', instance = '', filename = ''] = decoded;
  return { ok: true, path: { serverId, type, instance, filename } };
}

function describeTicketProblem(problem: TicketProblem): string {
  switch (problem) {
    case 'malformed':
      return 'the ticket is malformed';
    case 'bad_signature':
      return "the ticket's signature does not verify with the server's key (forged, altered, or signed by another server)";
    case 'invalid_claims':
      return "the ticket's claims are invalid";
    case 'expired':
      return 'the ticket has expired';
  }
}

/**
 * The node named in a ticket's payload, for the log only. Not trusted unless
 * the signature verified (`malformed` and `bad_signature` mark it unverified).
 */
function nodeNamedIn(ticket: string): string | null {
  const payload = ticket.split('.')[0];
  if (payload === undefined || payload.length === 0 || payload.length > MAX_TICKET_CHARS) return null;
  try {
    const json: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    if (typeof json === 'object' && json !== null && 'node' in json && typeof json.node === 'string') {
      return printable(json.node.slice(0, 128));
    }
  } catch {
    // not a payload we can read
  }
  return null;
}

// ---------------------------------------------------------------------------
// Opening the file

type Opened =
  | { ok: true; handle: FileHandle; path: string; size: number; mtime: Date }
  | { ok: false; status: 403 | 404 | 500; reason: string };

function fsFailure(error: unknown, what: string): Opened {
  const code = errnoCode(error);
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return { ok: false, status: 404, reason: `${what} does not exist` };
  if (code === 'ELOOP')
    return { ok: false, status: 403, reason: `${what} is a symlink loop or was replaced by a symlink` };
  return { ok: false, status: 500, reason: `cannot open ${what}: ${describeError(error)}` };
}

/**
 * Opens `<backDir>/<filename>` for reading if its real path is a regular file
 * strictly inside the real path of back_dir. The real path is opened with
 * O_NOFOLLOW (a symlink swapped in afterwards is refused) and O_NONBLOCK (a
 * FIFO cannot hang the open); the type and size come from the open descriptor.
 */
async function openServedFile(backDir: string, filename: string): Promise<Opened> {
  let root: string;
  try {
    root = await realpath(backDir);
  } catch (error) {
    return fsFailure(error, `back_dir ${backDir}`);
  }
  const requested = join(backDir, filename);
  let real: string;
  try {
    real = await realpath(requested);
  } catch (error) {
    return fsFailure(error, requested);
  }
  if (!isStrictlyInside(root, real)) {
    return { ok: false, status: 403, reason: `${requested} resolves to ${real}, outside back_dir ${root}` };
  }
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return fsFailure(error, real);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      return { ok: false, status: 403, reason: `${real} is not a regular file` };
    }
    return { ok: true, handle, path: real, size: stats.size, mtime: stats.mtime };
  } catch (error) {
    await handle.close().catch(() => undefined);
    return { ok: false, status: 500, reason: `cannot stat ${real}: ${describeError(error)}` };
  }
}

// ---------------------------------------------------------------------------
// The server

const AUTHENTICATE = { 'www-authenticate': 'Bearer' } as const;

function statusWord(status: number): string {
  return (STATUS_CODES[status] ?? 'error').toLowerCase();
}

function sendError(response: ServerResponse, status: number, headers: OutgoingHttpHeaders = {}): void {
  sendJson(response, status, { error: statusWord(status) }, headers);
}

export async function startFileServer(options: FileServerOptions): Promise<FileServer> {
  const { log, serverId, publicKey } = options;
  const now = options.now ?? Date.now;
  const instances = new Map<string, FileServerInstance>();
  for (const instance of options.instances) {
    instances.set(`${instance.type}\u0000${instance.instance}`, { ...instance });
  }

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const method = request.method ?? '';
    const target = request.url ?? '';
    let node: string | null = null;
    const describeRequest = (): string =>
      `${summarizeRequest(request)}${node === null ? '' : ` (node ${node})`}`;
    const refuse = (status: number, reason: string, headers: OutgoingHttpHeaders = {}): void => {
      const line = `file server: ${status} ${statusWord(status)} for ${describeRequest()}: ${reason}`;
      if (status >= 500) log.error(line);
      else log.warn(line);
      sendError(response, status, headers);
    };

    if (method !== 'GET' && method !== 'HEAD') {
      refuse(405, `method ${printable(method)} is not allowed`, { allow: 'GET, HEAD' });
      return;
    }
    const parsed = parseFilePath(target);
    if (!parsed.ok) {
      refuse(parsed.status, parsed.reason);
      return;
    }
    const ticket = bearerTicket(request.headers.authorization);
    if (ticket === null) {
      refuse(401, 'no "Authorization: Bearer <ticket>" header', AUTHENTICATE);
      return;
    }
    const key = publicKey();
    if (key === null) {
      node = nodeNamedIn(ticket);
      if (node !== null) node = `${node} (unverified)`;
      refuse(401, "this host does not have the server's ticket key yet", AUTHENTICATE);
      return;
    }
    const check = verifyTicket(ticket, key, now());
    if (!check.ok) {
      node = nodeNamedIn(ticket);
      if (node !== null && (check.problem === 'malformed' || check.problem === 'bad_signature')) {
        node = `${node} (unverified)`;
      }
      refuse(401, describeTicketProblem(check.problem), AUTHENTICATE);
      return;
    }
    const claims: TicketClaims = check.claims;
    node = printable(claims.node);
    if (claims.purpose !== 'pull') {
      refuse(403, `the ticket is for ${claims.purpose}, not for a pull`);
      return;
    }
    if (claims.server_id !== serverId) {
      refuse(403, `the ticket is for server_id ${claims.server_id}, and this host is ${serverId}`);
      return;
    }
    const url = parsed.path;
    const mismatch = (
      [
        ['server_id', url.serverId, claims.server_id],
        ['type', url.type, claims.type],
        ['instance', url.instance, claims.instance],
        ['filename', url.filename, claims.filename],
      ] as const
    ).find(([, inUrl, inTicket]) => inUrl !== inTicket);
    if (mismatch !== undefined) {
      const [name, inUrl, inTicket] = mismatch;
      refuse(
        403,
        `the URL names ${name} "${printable(inUrl)}" but the ticket names "${printable(inTicket)}"`,
      );
      return;
    }
    const instance = instances.get(`${claims.type}\u0000${claims.instance}`);
    if (instance === undefined) {
      refuse(
        403,
        `no instance with back_type ${claims.type} and instance ${claims.instance} is configured here`,
      );
      return;
    }
    const opened = await openServedFile(instance.backDir, claims.filename);
    if (!opened.ok) {
      refuse(opened.status, opened.reason);
      return;
    }

    const { handle: file, size } = opened;
    const lastModified = opened.mtime.toUTCString();
    let range = decideRange(request.headers.range, size);
    const ifRange = request.headers['if-range'];
    if (range.kind !== 'whole' && ifRange !== undefined && ifRange !== lastModified)
      range = { kind: 'whole' };
    if (range.kind === 'unsatisfiable') {
      await file.close();
      refuse(
        416,
        `the range "${printable(request.headers.range ?? '')}" is outside the file (${size} bytes)`,
        {
          'content-range': `bytes */${size}`,
        },
      );
      return;
    }
    const { status, start, length, headers: rangeHeaders, description } = answerRange(range, size);
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      ...rangeHeaders,
      'x-ubackup-size': size,
      'last-modified': lastModified,
      'cache-control': 'no-store',
    };
    const what = `${opened.path} ${description}`;

    const progress = { bytesRead: 0 };
    try {
      await sendFileRange(
        file,
        response,
        { status, headers, start, length, headOnly: method === 'HEAD' },
        progress,
      );
      if (method !== 'HEAD') options.onServed?.(progress.bytesRead, true);
      log.info(
        `file server: ${status} for ${describeRequest()}: ${method === 'HEAD' ? 'described' : 'sent'} ${what}`,
      );
    } catch (error) {
      if (method !== 'HEAD') options.onServed?.(progress.bytesRead, false);
      const gone = isClientGone(error);
      const line =
        `file server: the transfer for ${describeRequest()} of ${what} stopped after ` +
        `${progress.bytesRead} bytes read: ${gone ? 'the client went away' : describeError(error)}`;
      if (gone) log.warn(line);
      else log.error(line);
    }
  };

  const tls = options.tls;
  return startFileHttpServer({
    listen: options.listen,
    name: 'file server',
    log,
    handle,
    answerFailure: (response) => sendError(response, 500),
    createServer:
      tls === null
        ? undefined
        : (httpOptions, onRequest) =>
            createHttpsServer(
              { ...httpOptions, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' },
              onRequest,
            ),
  });
}
