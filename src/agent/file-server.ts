import type { KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join, sep } from 'node:path';
import { componentProblem, describeComponentProblem } from '../shared/path-component.js';
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
/** Size of one read of the served file, and of one write to the response. */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** Read buffers per response: one can be read into while another is being written. */
const SEND_BUFFERS = 2;
/** Time to receive a request's headers. */
export const HEADERS_TIMEOUT_MS = 20_000;
/** Time to receive a whole request (a GET has no body, so little more than its headers). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A connection on which nothing moves for this long is closed (a stalled node releases the file). */
export const IDLE_SOCKET_TIMEOUT_MS = 120_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Longest request target quoted in the log. */
const MAX_LOGGED_TARGET_CHARS = 300;

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
}

export interface FileServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** Stops listening, cuts open connections (a node resumes with Range) and waits for the handlers. */
  close(): Promise<void>;
}

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

export type RangeDecision =
  | { kind: 'whole' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const SINGLE_BYTE_RANGE = /^bytes=(\d*)-(\d*)$/i;

/**
 * What to send for a `Range` header and a file of `size` bytes. One range is
 * honoured (`end` inclusive, clamped to the file); several ranges, other units
 * and malformed headers are ignored (whole file).
 */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'whole' };
  const match = SINGLE_BYTE_RANGE.exec(header.trim());
  if (match === null) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    // bytes=-n: the last n bytes.
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Number.POSITIVE_INFINITY : Number(last);
  if (end < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/** The ticket of `Authorization: Bearer <ticket>`, or null. */
export function bearerTicket(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1] ?? null;
}

/** True when `path` is below `root` (both real paths), never `root` itself. */
export function isStrictlyInside(root: string, path: string): boolean {
  const prefix = root.endsWith(sep) ? root : `${root}${sep}`;
  return path.length > prefix.length && path.startsWith(prefix);
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

/** Text safe for one log line. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we replace
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}

function statusWord(status: number): string {
  return (STATUS_CODES[status] ?? 'error').toLowerCase();
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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

/** The response closed before everything was sent: the client went away. */
class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

/**
 * Sends bytes `start` … `start + length - 1` of `file` as the response body,
 * then ends the response. Positional reads into SEND_BUFFERS reused buffers;
 * a buffer is read into again only once the socket has taken its previous
 * write, which also bounds what is queued on the response (backpressure).
 * Never sends more than `length` bytes (each read asks for at most what is
 * left); throws when the file ends first (it shrank while it was sent), and
 * ClientGone when the response closes. After a throw the caller destroys the
 * connection, so the client sees a body shorter than its Content-Length.
 */
async function sendRange(
  file: FileHandle,
  response: ServerResponse,
  start: number,
  length: number,
  progress: { bytesRead: number },
): Promise<void> {
  let onClose = (): void => undefined;
  const closed = new Promise<Error | null>((resolveClosed) => {
    onClose = () =>
      resolveClosed(
        response.writableFinished ? null : new ClientGone('the response closed before it was complete'),
      );
    response.once('close', onClose);
  });
  try {
    const chunk = Math.min(READ_CHUNK_BYTES, length);
    const buffers = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafe(chunk));
    // Settles (with null or an error, never rejects) when the socket has taken the buffer's last write.
    const taken: Array<Promise<Error | null> | null> = buffers.map(() => null);
    let sent = 0;
    for (let turn = 0; sent < length; turn = (turn + 1) % SEND_BUFFERS) {
      const buffer = buffers[turn] as Buffer;
      const previous = taken[turn];
      if (previous !== null && previous !== undefined) {
        const error = await Promise.race([previous, closed]);
        if (error !== null) throw error;
      }
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - sent), start + sent);
      if (bytesRead === 0) {
        throw new Error(`the file shrank while it was sent (${sent} of ${length} bytes read)`);
      }
      progress.bytesRead += bytesRead;
      sent += bytesRead;
      if (response.destroyed) throw new ClientGone('the response closed before it was complete');
      taken[turn] = new Promise<Error | null>((resolveTaken) => {
        response.write(buffer.subarray(0, bytesRead), (error) => resolveTaken(error ?? null));
      });
    }
    const finished = new Promise<Error | null>((resolveFinished) => {
      response.end((error?: Error | null) => resolveFinished(error ?? null));
    });
    const error = await Promise.race([finished, closed]);
    if (error !== null) throw error;
  } finally {
    response.off('close', onClose);
  }
}

// ---------------------------------------------------------------------------
// The server

const AUTHENTICATE = { 'www-authenticate': 'Bearer' } as const;

function sendError(response: ServerResponse, status: number, headers: OutgoingHttpHeaders = {}): void {
  const body = JSON.stringify({ error: statusWord(status) });
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  // Node sends no body for HEAD whatever is passed here.
  response.end(body);
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
    const describeRequest = (): string => {
      const shown =
        target.length > MAX_LOGGED_TARGET_CHARS ? `${target.slice(0, MAX_LOGGED_TARGET_CHARS)}…` : target;
      const from = request.socket.remoteAddress ?? 'unknown address';
      return `${printable(method)} ${printable(shown)} from ${from}${node === null ? '' : ` (node ${node})`}`;
    };
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
    const start = range.kind === 'partial' ? range.start : 0;
    const end = range.kind === 'partial' ? range.end : size - 1;
    const length = end - start + 1;
    const headers: OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'content-length': length,
      'accept-ranges': 'bytes',
      'x-ubackup-size': size,
      'last-modified': lastModified,
      'cache-control': 'no-store',
    };
    if (range.kind === 'partial') headers['content-range'] = `bytes ${start}-${end}/${size}`;
    const status = range.kind === 'partial' ? 206 : 200;
    const what = `${opened.path} ${range.kind === 'partial' ? `bytes ${start}-${end} of ${size}` : `(${size} bytes)`}`;

    if (method === 'HEAD' || length === 0) {
      await file.close();
      response.writeHead(status, headers);
      response.end();
      log.info(
        `file server: ${status} for ${describeRequest()}: ${method === 'HEAD' ? 'described' : 'sent'} ${what}`,
      );
      return;
    }
    response.writeHead(status, headers);
    const progress = { bytesRead: 0 };
    try {
      await sendRange(file, response, start, length, progress);
      log.info(`file server: ${status} for ${describeRequest()}: sent ${what}`);
    } catch (error) {
      // Whatever was not sent, the client must see a short body, never a complete-looking one.
      response.destroy();
      const gone = error instanceof ClientGone || errnoCode(error) === 'ERR_STREAM_PREMATURE_CLOSE';
      const line =
        `file server: the transfer for ${describeRequest()} of ${what} stopped after ` +
        `${progress.bytesRead} bytes read: ${gone ? 'the client went away' : describeError(error)}`;
      if (gone) log.warn(line);
      else log.error(line);
    } finally {
      await file.close().catch(() => undefined);
    }
  };

  const inFlight = new Set<Promise<void>>();
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const done = handle(request, response)
      .catch((error: unknown) => {
        log.error(
          `file server: ${request.method} ${printable(request.url ?? '')} failed: ${describeError(error)}`,
        );
        if (!response.headersSent) sendError(response, 500);
        else response.destroy();
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };

  const httpOptions = {
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  };
  const server: Server =
    options.tls === null
      ? createHttpServer(httpOptions, onRequest)
      : createHttpsServer(
          { ...httpOptions, cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' },
          onRequest,
        );
  // No 'timeout' listener: Node destroys a socket idle for this long.
  server.setTimeout(IDLE_SOCKET_TIMEOUT_MS);

  await new Promise<void>((resolveListen, rejectListen) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      rejectListen(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolveListen();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: options.listen.host, port: options.listen.port });
  });
  server.on('error', (error) => log.error(`file server: ${describeError(error)}`));

  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : options.listen.port;
  let closing: Promise<void> | null = null;
  return {
    port,
    close(): Promise<void> {
      closing ??= (async () => {
        const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
        server.closeAllConnections();
        await closed;
        await Promise.all([...inFlight]);
      })();
      return closing;
    },
  };
}
