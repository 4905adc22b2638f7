import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFile,
  mkdir,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentStartError, startAgentDaemon } from '../../src/agent/agent-daemon.js';
import { AgentState } from '../../src/agent/agent-state.js';
import type { AgentLog } from '../../src/agent/delivery.js';
import { type FileServer, parseFilePath, startFileServer } from '../../src/agent/file-server.js';
import { runAgentServe } from '../../src/agent/serve-command.js';
import { decideRange } from '../../src/shared/byte-range.js';
import { READ_CHUNK_BYTES } from '../../src/shared/send-file-range.js';
import {
  exportPublicKey,
  generateTicketKeys,
  signTicket,
  type TicketClaims,
  type TicketKeyPair,
} from '../../src/shared/ticket.js';
import { freePort } from '../support/free-port.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

/** The agent's file server, against real files, real keys and a real listening socket. */

const run = promisify(execFile);
const SERVER_ID = '111111';
const NODE = 'node-a';
const BIG_SIZE = 3 * READ_CHUNK_BYTES + 12_345;

class MemoryLog implements AgentLog {
  readonly lines: { level: string; message: string }[] = [];
  info(message: string): void {
    this.lines.push({ level: 'info', message });
  }
  warn(message: string): void {
    this.lines.push({ level: 'warn', message });
  }
  error(message: string): void {
    this.lines.push({ level: 'error', message });
  }
  has(level: string, pattern: RegExp): boolean {
    return this.lines.some((line) => line.level === level && pattern.test(line.message));
  }
}

function claimsFor(overrides: Partial<TicketClaims> = {}): TicketClaims {
  return {
    v: 1,
    purpose: 'pull',
    job_id: 7,
    backup_id: 42,
    server_id: SERVER_ID,
    type: 'mysql',
    instance: '3306',
    filename: 'full.xb',
    size: BIG_SIZE,
    blake3: 'a'.repeat(64),
    node: NODE,
    exp: Date.now() + 60_000,
    ...overrides,
  };
}

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** One request on a fresh connection, written byte for byte (nothing normalises the target). */
function rawRequest(
  port: number,
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Answer> {
  return new Promise<Answer>((resolveAnswer, rejectAnswer) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${method} ${target}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', rejectAnswer);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split < 0) {
        rejectAnswer(new Error(`no complete answer to ${method} ${target}: ${all.toString('latin1')}`));
        return;
      }
      const [statusLine = '', ...headerLines] = all.subarray(0, split).toString('latin1').split('\r\n');
      const map = new Map<string, string>();
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      resolveAnswer({
        status: Number(statusLine.split(' ')[1]),
        headers: map,
        body: all.subarray(split + 4),
      });
    });
    const lines = [
      `${method} ${target} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      '',
      '',
    ];
    socket.write(lines.join('\r\n'));
  });
}

const WORDS: Record<number, string> = {
  400: 'bad request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not found',
  405: 'method not allowed',
  416: 'range not satisfiable',
};

let dir: TempDir;
let backDir: string;
let outsideDir: string;
let big: Buffer;
let keys: TicketKeyPair;
let otherKeys: TicketKeyPair;

beforeAll(async () => {
  dir = await makeTempDir('ubackup-file-server');
  backDir = join(dir.path, 'backup', 'database_3306');
  outsideDir = join(dir.path, 'outside');
  await mkdir(backDir, { recursive: true });
  await mkdir(join(backDir, 'subdir'));
  await mkdir(outsideDir);
  big = randomBytes(BIG_SIZE);
  await writeFile(join(backDir, 'full.xb'), big);
  await writeFile(join(backDir, 'empty.xb'), '');
  await writeFile(join(backDir, '%2e%2e'), 'a file with a strange name');
  await writeFile(join(outsideDir, 'secret.txt'), 'not for nodes');
  await symlink(join(outsideDir, 'secret.txt'), join(backDir, 'evil.xb'));
  await symlink('full.xb', join(backDir, 'alias.xb'));
  keys = generateTicketKeys();
  otherKeys = generateTicketKeys();
});

afterAll(async () => {
  await dir.cleanup();
});

describe('the pure parts', () => {
  it('decodes each component exactly once and refuses what is not a component', () => {
    expect(parseFilePath('/v1/files/111111/mysql/3306/a%20b.xb?x=1')).toEqual({
      ok: true,
      path: { serverId: '111111', type: 'mysql', instance: '3306', filename: 'a b.xb' },
    });
    expect(parseFilePath('/v1/files/111111/mysql/3306/%252e%252e')).toMatchObject({
      ok: true,
      path: { filename: '%2e%2e' },
    });
    for (const bad of [
      '/v1/files/111111/mysql/3306/..',
      '/v1/files/111111/mysql/3306/%2e%2e',
      '/v1/files/111111/mysql/3306/%2E',
      '/v1/files/111111/mysql/3306/a%2Fb',
      '/v1/files/111111/mysql/3306/a%5Cb',
      '/v1/files/111111/mysql/3306/a%00b',
      '/v1/files/111111/mysql/3306/a%0Ab',
      '/v1/files/111111/mysql/3306/%E0%A4%A',
      '/v1/files/111111/mysql/3306/',
      '/v1/files/111111/mysql/3306/a/b',
      `/v1/files/111111/mysql/3306/${'x'.repeat(256)}`,
    ]) {
      expect(parseFilePath(bad), bad).toMatchObject({ ok: false, status: 400 });
    }
    expect(parseFilePath('/v2/files/1/2/3/4')).toMatchObject({ ok: false, status: 404 });
  });

  it('honours one byte range and ignores the rest', () => {
    expect(decideRange(undefined, 100)).toEqual({ kind: 'whole' });
    expect(decideRange('bytes=0-9', 100)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(decideRange('bytes=90-', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(decideRange('bytes=90-1000', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(decideRange('bytes=-10', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(decideRange('bytes=-1000', 100)).toEqual({ kind: 'partial', start: 0, end: 99 });
    expect(decideRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=-0', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'whole' });
    expect(decideRange('bytes=9-1', 100)).toEqual({ kind: 'whole' });
    expect(decideRange('items=0-1', 100)).toEqual({ kind: 'whole' });
    expect(decideRange('bytes=-', 100)).toEqual({ kind: 'whole' });
  });
});

describe('startFileServer', () => {
  let server: FileServer;
  let log: MemoryLog;
  let currentKey: TicketKeyPair['publicKey'] | null;
  let base: string;

  beforeAll(async () => {
    currentKey = keys.publicKey;
    log = new MemoryLog();
    server = await startFileServer({
      listen: { host: '127.0.0.1', port: 0 },
      tls: null,
      serverId: SERVER_ID,
      instances: [
        { type: 'mysql', instance: '3306', backDir },
        { type: 'mysql', instance: '3307', backDir: join(dir.path, 'backup', 'no-such-dir') },
      ],
      publicKey: () => currentKey,
      log,
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.close();
  });

  beforeEach(() => {
    currentKey = keys.publicKey;
    log.lines.length = 0;
  });

  const urlOf = (claims: Pick<TicketClaims, 'server_id' | 'type' | 'instance' | 'filename'>): string =>
    `/v1/files/${[claims.server_id, claims.type, claims.instance, claims.filename].map(encodeURIComponent).join('/')}`;

  async function get(
    path: string,
    ticket: string | null,
    init: { method?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const response = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...(ticket === null ? {} : { authorization: `Bearer ${ticket}` }), ...init.headers },
      signal: AbortSignal.timeout(10_000),
    });
    const headers = new Map<string, string>(response.headers.entries());
    return { status: response.status, headers, body: Buffer.from(await response.arrayBuffer()) };
  }

  async function pull(overrides: Partial<TicketClaims> = {}, headers: Record<string, string> = {}) {
    const claims = claimsFor(overrides);
    return get(urlOf(claims), signTicket(claims, keys.privateKey), { headers });
  }

  /** The body is the status word and nothing else: no path, no reason. */
  function expectRefusal(answer: Answer, status: number): void {
    expect(answer.status).toBe(status);
    const text = answer.body.toString('utf8');
    expect(text).toBe(JSON.stringify({ error: WORDS[status] }));
    for (const leak of [
      dir.path,
      'backup',
      'secret',
      'outside',
      'expired',
      'signature',
      'node-a',
      'ticket',
    ]) {
      expect(text).not.toContain(leak);
    }
    expect(answer.headers.get('content-type')).toBe('application/json');
  }

  describe('refuses', () => {
    it('a request without a ticket (401)', async () => {
      const answer = await get(urlOf(claimsFor()), null);
      expectRefusal(answer, 401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
      expect(log.has('warn', /401 .*no "Authorization: Bearer <ticket>" header/)).toBe(true);
    });

    it('a malformed ticket (401)', async () => {
      expectRefusal(await get(urlOf(claimsFor()), 'not-a-ticket!'), 401);
      expectRefusal(await get(urlOf(claimsFor()), 'abc.def'), 401);
      expect(log.has('warn', /401 .*malformed|401 .*signature/)).toBe(true);
    });

    it('an expired ticket (401), naming the node in the log', async () => {
      const answer = await pull({ exp: Date.now() - 1 });
      expectRefusal(answer, 401);
      expect(log.has('warn', /401 unauthorized .*\(node node-a\): the ticket has expired/)).toBe(true);
    });

    it('a ticket signed by another key (401)', async () => {
      const claims = claimsFor();
      expectRefusal(await get(urlOf(claims), signTicket(claims, otherKeys.privateKey)), 401);
      expect(log.has('warn', /node node-a \(unverified\).*signature does not verify/)).toBe(true);
    });

    it('a ticket whose signature was altered (401)', async () => {
      const claims = claimsFor();
      const [payload, signature = ''] = signTicket(claims, keys.privateKey).split('.');
      const flipped = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
      expectRefusal(await get(urlOf(claims), `${payload}.${flipped}`), 401);
    });

    it('a ticket whose claims were altered (401)', async () => {
      const claims = claimsFor();
      const [, signature] = signTicket(claims, keys.privateKey).split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, filename: 'other.xb' })).toString('base64url');
      expectRefusal(await get(urlOf({ ...claims, filename: 'other.xb' }), `${forged}.${signature}`), 401);
    });

    it('a ticket for another host (403)', async () => {
      expectRefusal(await pull({ server_id: '222222' }), 403);
      expect(log.has('warn', /403 forbidden .*\(node node-a\): the ticket is for server_id 222222/)).toBe(
        true,
      );
    });

    it('a ticket for another file than the URL names (403)', async () => {
      const ticket = signTicket(claimsFor({ filename: 'other.xb' }), keys.privateKey);
      expectRefusal(await get(urlOf(claimsFor()), ticket), 403);
      const forInstance = signTicket(claimsFor({ instance: '3307' }), keys.privateKey);
      expectRefusal(await get(urlOf(claimsFor()), forInstance), 403);
      expect(log.has('warn', /the URL names filename "full.xb" but the ticket names "other.xb"/)).toBe(true);
    });

    it('a restore ticket (403)', async () => {
      expectRefusal(await pull({ purpose: 'restore' }), 403);
      expect(log.has('warn', /the ticket is for restore, not for a pull/)).toBe(true);
    });

    it('an instance this host does not have (403)', async () => {
      expectRefusal(await pull({ type: 'redis', instance: '6379' }), 403);
      expect(log.has('warn', /no instance with back_type redis and instance 6379/)).toBe(true);
    });

    it('../ in the path, raw (400)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      const auth = { Authorization: `Bearer ${ticket}` };
      for (const target of [
        '/v1/files/111111/mysql/3306/../../outside/secret.txt',
        '/v1/files/111111/mysql/3306/..',
        '/v1/files/111111/mysql/../3306/full.xb',
        '/v1/files/111111/mysql/3306/./full.xb',
      ]) {
        expectRefusal(await rawRequest(server.port, target, auth), 400);
      }
    });

    it('encoded dots and slashes: %2e%2e%2f, %2F, %5C (400)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      const auth = { Authorization: `Bearer ${ticket}` };
      for (const target of [
        '/v1/files/111111/mysql/3306/%2e%2e%2f%2e%2e%2foutside%2fsecret.txt',
        '/v1/files/111111/mysql/3306/%2e%2e',
        '/v1/files/111111/mysql/3306/..%2F..%2Foutside%2Fsecret.txt',
        '/v1/files/111111/mysql/3306/..%5C..%5Csecret.txt',
        '/v1/files/111111/mysql/%2e%2e/full.xb',
      ]) {
        expectRefusal(await rawRequest(server.port, target, auth), 400);
      }
    });

    it('a NUL byte, %00 (400)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      expectRefusal(
        await rawRequest(server.port, '/v1/files/111111/mysql/3306/full.xb%00.txt', {
          Authorization: `Bearer ${ticket}`,
        }),
        400,
      );
    });

    it('double encoding, %252e%252e: decoded once, it is another (harmless) name (403, or 404 with a ticket for it)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      const auth = { Authorization: `Bearer ${ticket}` };
      expectRefusal(await rawRequest(server.port, '/v1/files/111111/mysql/3306/%252e%252e', auth), 403);
      expectRefusal(
        await rawRequest(server.port, '/v1/files/111111/mysql/3306/%252e%252e%252fsecret.txt', auth),
        403,
      );
      // With a ticket for the literal name "%2e%2e" the file of that name is served, nothing above it.
      const literal = signTicket(claimsFor({ filename: '%2e%2e' }), keys.privateKey);
      const answer = await rawRequest(server.port, '/v1/files/111111/mysql/3306/%252e%252e', {
        Authorization: `Bearer ${literal}`,
      });
      expect(answer.status).toBe(200);
      expect(answer.body.toString()).toBe('a file with a strange name');
    });

    it('an absolute path, encoded: %2Fetc%2Fpasswd (400)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      expectRefusal(
        await rawRequest(server.port, '/v1/files/111111/mysql/3306/%2Fetc%2Fpasswd', {
          Authorization: `Bearer ${ticket}`,
        }),
        400,
      );
    });

    it('bad percent-encoding and a wrong number of segments (400)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      const auth = { Authorization: `Bearer ${ticket}` };
      expectRefusal(await rawRequest(server.port, '/v1/files/111111/mysql/3306/%E0%A4%A', auth), 400);
      expectRefusal(await rawRequest(server.port, '/v1/files/111111/mysql/3306/full.xb/', auth), 400);
      expectRefusal(await rawRequest(server.port, '/v1/files/111111/mysql/full.xb', auth), 400);
    });

    it('a symlink inside back_dir that points outside it (403)', async () => {
      expectRefusal(await pull({ filename: 'evil.xb' }), 403);
      expect(log.has('warn', /403 forbidden .*node node-a.*evil\.xb resolves to .*outside back_dir/)).toBe(
        true,
      );
    });

    it('a directory (403)', async () => {
      expectRefusal(await pull({ filename: 'subdir' }), 403);
    });

    it('a file that does not exist (404), and a back_dir that does not exist (404)', async () => {
      expectRefusal(await pull({ filename: 'gone.xb' }), 404);
      expectRefusal(await pull({ instance: '3307' }), 404);
      expect(log.has('warn', /404 not found .*gone\.xb does not exist/)).toBe(true);
    });

    it('methods other than GET and HEAD (405), unknown routes (404)', async () => {
      const ticket = signTicket(claimsFor(), keys.privateKey);
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const answer = await get(urlOf(claimsFor()), ticket, { method });
        expectRefusal(answer, 405);
        expect(answer.headers.get('allow')).toBe('GET, HEAD');
      }
      expectRefusal(await get('/v1/other', ticket), 404);
      expectRefusal(await get('/', null), 404);
    });

    it('every pull while it has no ticket key (401)', async () => {
      currentKey = null;
      expectRefusal(await pull(), 401);
      expect(log.has('warn', /does not have the server's ticket key yet/)).toBe(true);
      currentKey = keys.publicKey;
      expect((await pull()).status).toBe(200);
    });
  });

  describe('serves', () => {
    it('the whole file, byte for byte, with its size and no ETag', async () => {
      const answer = await pull();
      expect(answer.status).toBe(200);
      expect(answer.body.equals(big)).toBe(true);
      expect(answer.headers.get('content-length')).toBe(String(BIG_SIZE));
      expect(answer.headers.get('x-ubackup-size')).toBe(String(BIG_SIZE));
      expect(answer.headers.get('accept-ranges')).toBe('bytes');
      expect(answer.headers.get('content-type')).toBe('application/octet-stream');
      expect(answer.headers.has('etag')).toBe(false);
      // Logged when the response has finished, which may be just after the client has it all.
      await waitFor(() => log.has('info', /200 for GET .*\(node node-a\): sent .*full\.xb/), {
        timeoutMs: 5_000,
        what: 'the transfer in the log',
      });
    });

    it('a symlink that stays inside back_dir', async () => {
      const answer = await pull({ filename: 'alias.xb' });
      expect(answer.status).toBe(200);
      expect(answer.body.equals(big)).toBe(true);
    });

    it('an empty file', async () => {
      const answer = await pull({ filename: 'empty.xb', size: 0 });
      expect(answer.status).toBe(200);
      expect(answer.body.length).toBe(0);
      expect(answer.headers.get('x-ubackup-size')).toBe('0');
    });

    it('a range, and the rest from where it stopped (resume)', async () => {
      const cut = READ_CHUNK_BYTES + 777;
      const first = await pull({}, { range: `bytes=0-${cut - 1}` });
      expect(first.status).toBe(206);
      expect(first.headers.get('content-range')).toBe(`bytes 0-${cut - 1}/${BIG_SIZE}`);
      expect(first.headers.get('content-length')).toBe(String(cut));
      const rest = await pull({}, { range: `bytes=${cut}-` });
      expect(rest.status).toBe(206);
      expect(rest.headers.get('content-range')).toBe(`bytes ${cut}-${BIG_SIZE - 1}/${BIG_SIZE}`);
      expect(rest.headers.get('x-ubackup-size')).toBe(String(BIG_SIZE));
      expect(Buffer.concat([first.body, rest.body]).equals(big)).toBe(true);

      const tail = await pull({}, { range: 'bytes=-100' });
      expect(tail.status).toBe(206);
      expect(tail.body.equals(big.subarray(BIG_SIZE - 100))).toBe(true);
    });

    it('416 for a range past the end', async () => {
      const answer = await pull({}, { range: `bytes=${BIG_SIZE}-` });
      expectRefusal(answer, 416);
      expect(answer.headers.get('content-range')).toBe(`bytes */${BIG_SIZE}`);
    });

    it('the whole file for several ranges, and for an If-Range that does not match', async () => {
      const several = await pull({}, { range: 'bytes=0-9,20-29' });
      expect(several.status).toBe(200);
      expect(several.body.equals(big)).toBe(true);

      const head = await pull({}, { range: 'bytes=0-9' });
      const lastModified = head.headers.get('last-modified') ?? '';
      const matching = await pull({}, { range: 'bytes=10-19', 'if-range': lastModified });
      expect(matching.status).toBe(206);
      expect(matching.body.equals(big.subarray(10, 20))).toBe(true);
      const stale = await pull({}, { range: 'bytes=10-19', 'if-range': 'Thu, 01 Jan 1970 00:00:00 GMT' });
      expect(stale.status).toBe(200);
      expect(stale.body.length).toBe(BIG_SIZE);
      const etag = await pull({}, { range: 'bytes=10-19', 'if-range': '"abc"' });
      expect(etag.status).toBe(200);
    });

    it('HEAD: the headers without the body', async () => {
      const claims = claimsFor();
      const ticket = signTicket(claims, keys.privateKey);
      const answer = await get(urlOf(claims), ticket, { method: 'HEAD' });
      expect(answer.status).toBe(200);
      expect(answer.body.length).toBe(0);
      expect(answer.headers.get('content-length')).toBe(String(BIG_SIZE));
      expect(answer.headers.get('x-ubackup-size')).toBe(String(BIG_SIZE));
      const ranged = await get(urlOf(claims), ticket, { method: 'HEAD', headers: { range: 'bytes=5-' } });
      expect(ranged.status).toBe(206);
      expect(ranged.headers.get('content-range')).toBe(`bytes 5-${BIG_SIZE - 1}/${BIG_SIZE}`);
      const refused = await get(urlOf(claims), null, { method: 'HEAD' });
      expect(refused.status).toBe(401);
      expect(refused.body.length).toBe(0);
    });

    it('closes the file when the node goes away mid-transfer', async () => {
      const hugeName = 'huge.xb';
      const huge = join(backDir, hugeName);
      await writeFile(huge, Buffer.alloc(64 * 1024 * 1024, 7));
      const realHuge = await realpath(huge);
      try {
        const openOnHuge = async (): Promise<number> => {
          let count = 0;
          for (const fd of await readdir('/proc/self/fd')) {
            const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
            if (target === realHuge) count += 1;
          }
          return count;
        };
        const ticket = signTicket(claimsFor({ filename: hugeName }), keys.privateKey);
        const socket = connect(server.port, '127.0.0.1');
        const gotHeaders = new Promise<void>((resolveHeaders) => socket.once('data', () => resolveHeaders()));
        socket.write(
          `GET /v1/files/111111/mysql/3306/${hugeName} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ticket}\r\n\r\n`,
        );
        await gotHeaders;
        socket.pause(); // backpressure: the server stops reading the file with it still open
        await waitFor(async () => (await openOnHuge()) === 1, { timeoutMs: 10_000, what: 'the file open' });
        socket.destroy();
        await waitFor(async () => (await openOnHuge()) === 0, { timeoutMs: 10_000, what: 'the file closed' });
        await waitFor(() => log.has('warn', /stopped after \d+ bytes read: the client went away/), {
          timeoutMs: 10_000,
          what: 'the aborted transfer in the log',
        });
        expect((await pull({ filename: 'empty.xb' })).status).toBe(200);
      } finally {
        await rm(huge, { force: true });
      }
    });

    /**
     * GETs a file on a raw connection; once the head is in, stops reading (the
     * server blocks on backpressure) while `meanwhile` runs, then reads to the close.
     */
    const pullHolding = async (
      filename: string,
      meanwhile: () => Promise<void>,
    ): Promise<{ contentLength: number; bodyBytes: number }> => {
      const ticket = signTicket(claimsFor({ filename }), keys.privateKey);
      const socket = connect(server.port, '127.0.0.1');
      let head = '';
      let headDone = false;
      let bodyBytes = 0;
      const gotHead = new Promise<void>((resolveHead) => {
        socket.on('data', (data: Buffer) => {
          if (headDone) {
            bodyBytes += data.length;
            return;
          }
          head += data.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          headDone = true;
          bodyBytes += Buffer.byteLength(head, 'latin1') - end - 4;
          socket.pause();
          resolveHead();
        });
      });
      const closed = new Promise<void>((resolveClose) => socket.on('close', () => resolveClose()));
      socket.on('error', () => undefined);
      socket.write(
        `GET /v1/files/111111/mysql/3306/${filename} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${ticket}\r\n\r\n`,
      );
      await gotHead;
      await meanwhile();
      socket.resume();
      await closed;
      const contentLength = Number(/\r\ncontent-length: (\d+)\r\n/i.exec(head)?.[1]);
      return { contentLength, bodyBytes };
    };

    it('cuts the connection short when the file shrinks while it is sent', async () => {
      const name = 'shrinking.xb';
      const path = join(backDir, name);
      // Sparse, and far more than the server can have read ahead while the client does not read
      // (its read buffers, the socket buffers: tcp_wmem and tcp_rmem allow at most 4 + 32 MiB here).
      await writeFile(path, '');
      await truncate(path, 128 * 1024 * 1024);
      try {
        const kept = 64 * 1024 * 1024;
        const { contentLength, bodyBytes } = await pullHolding(name, async () => {
          await truncate(path, kept);
        });
        expect(contentLength).toBe(128 * 1024 * 1024);
        // What was read and not yet handed to the socket when the connection was cut is lost.
        expect(bodyBytes).toBeGreaterThan(kept - 2 * READ_CHUNK_BYTES);
        expect(bodyBytes).toBeLessThanOrEqual(kept);
        await waitFor(() => log.has('error', /the file shrank while it was sent \(67108864 of 134217728/), {
          timeoutMs: 10_000,
          what: 'the shrunk file in the log',
        });
      } finally {
        await rm(path, { force: true });
      }
    });

    it('never sends more than Content-Length when the file grows while it is sent', async () => {
      const name = 'growing.xb';
      const path = join(backDir, name);
      await writeFile(path, '');
      await truncate(path, 64 * 1024 * 1024);
      try {
        const { contentLength, bodyBytes } = await pullHolding(name, async () => {
          await appendFile(path, Buffer.alloc(8 * 1024 * 1024, 5));
        });
        expect(contentLength).toBe(64 * 1024 * 1024);
        expect(bodyBytes).toBe(contentLength);
        await waitFor(() => log.has('info', /200 for GET .*: sent .*growing\.xb \(67108864 bytes\)/), {
          timeoutMs: 10_000,
          what: 'the transfer in the log',
        });
      } finally {
        await rm(path, { force: true });
      }
    });
  });
});

describe('TLS', () => {
  it('serves over HTTPS with a certificate the client trusts', async () => {
    const certFile = join(dir.path, 'cert.pem');
    const keyFile = join(dir.path, 'key.pem');
    await run('/usr/bin/openssl', [
      'req',
      '-x509',
      '-newkey',
      'ed25519',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    const cert = await readFile(certFile, 'utf8');
    const log = new MemoryLog();
    const server = await startFileServer({
      listen: { host: '127.0.0.1', port: 0 },
      tls: { cert, key: await readFile(keyFile, 'utf8') },
      serverId: SERVER_ID,
      instances: [{ type: 'mysql', instance: '3306', backDir }],
      publicKey: () => keys.publicKey,
      log,
    });
    const trusting = new Agent({ connect: { ca: cert } });
    try {
      const url = `https://127.0.0.1:${server.port}/v1/files/111111/mysql/3306/full.xb`;
      const ticket = signTicket(claimsFor(), keys.privateKey);
      const response = await undiciFetch(url, {
        headers: { authorization: `Bearer ${ticket}`, range: 'bytes=10-' },
        dispatcher: trusting,
      });
      expect(response.status).toBe(206);
      expect(Buffer.from(await response.arrayBuffer()).equals(big.subarray(10))).toBe(true);
      // A client that does not trust the certificate gets nowhere.
      await expect(fetch(url, { headers: { authorization: `Bearer ${ticket}` } })).rejects.toThrow();
      // Plain HTTP to the TLS port is not served.
      await expect(
        fetch(url.replace('https:', 'http:'), { signal: AbortSignal.timeout(5_000) }).then((r) => r.status),
      ).rejects.toThrow();
    } finally {
      await trusting.close();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------------------
// The daemon and `agent serve`: the key from the server, the port from the config.

interface FakeApi {
  url: string;
  /** What GET /api/v1/agents/ticket-key answers. */
  keyStatus: number;
  keyRequests: number;
  close(): Promise<void>;
}

async function startFakeApi(publicKey: string): Promise<FakeApi> {
  const api: FakeApi = { url: '', keyStatus: 200, keyRequests: 0, close: async () => undefined };
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const send = (status: number, payload: unknown): void => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(payload));
      };
      if (request.url === '/api/v1/agents/enroll' && request.method === 'POST') {
        send(201, { server_id: SERVER_ID, credential: 'ubc_issued', ticket_public_key: publicKey });
        return;
      }
      if (request.headers.authorization !== 'Bearer ubc_issued') {
        send(401, { error: { code: 'unauthenticated', message: 'unknown credential' } });
        return;
      }
      if (request.url === '/api/v1/agents/ticket-key' && request.method === 'GET') {
        api.keyRequests += 1;
        if (api.keyStatus === 200) send(200, { public_key: publicKey });
        else send(api.keyStatus, { error: { code: 'unavailable', message: 'try later' } });
        return;
      }
      send(201, { duplicate: false });
    });
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = () =>
    new Promise<void>((resolveClose) => {
      server.closeAllConnections();
      server.close(() => resolveClose());
    });
  return api;
}

describe('agent serve and the daemon', () => {
  let work: TempDir;
  let log: MemoryLog;
  const cleanups: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    work = await makeTempDir('ubackup-agent-serve');
    log = new MemoryLog();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await work.cleanup();
  });

  async function writeConfig(
    serverUrl: string,
    port: number,
    extra: { global?: string[]; enroll?: boolean } = {},
  ): Promise<string> {
    const path = join(work.path, 'agent.conf');
    await writeFile(
      path,
      [
        '[global]',
        `server_id = ${SERVER_ID}`,
        'game_id = 31',
        `server_url = ${serverUrl}`,
        ...(extra.enroll ? ['enroll_token = ube_enroll'] : []),
        `state_dir = ${join(work.path, 'state')}`,
        'my_ip = 127.0.0.1',
        `listen = 127.0.0.1:${port}`,
        'jitter = 0',
        ...(extra.global ?? []),
        '',
        '[mysql3306]',
        'back_type = mysql',
        'instance = 3306',
        `back_dir = ${backDir}`,
        `back_log = ${join(work.path, 'back.log')}`,
        'script = exit 0',
        'schedule = 0 0 1 1 *',
        '',
      ].join('\n'),
    );
    return path;
  }

  async function pullStatus(port: number): Promise<number> {
    const ticket = signTicket(claimsFor({ filename: 'empty.xb', size: 0 }), keys.privateKey);
    const response = await fetch(`http://127.0.0.1:${port}/v1/files/111111/mysql/3306/empty.xb`, {
      headers: { authorization: `Bearer ${ticket}` },
      signal: AbortSignal.timeout(5_000),
    });
    await response.arrayBuffer();
    return response.status;
  }

  it('serve: 401 without a credential, then fetches the key with the stored credential and serves', async () => {
    const api = await startFakeApi(exportPublicKey(keys.publicKey));
    cleanups.push(() => api.close());
    const port = await freePort();
    const configPath = await writeConfig(api.url, port);
    const serve = await runAgentServe({ configPath, log, random: () => 0 });
    cleanups.push(() => serve.close());
    expect(serve.port).toBe(port);
    expect(await pullStatus(port)).toBe(401);
    await waitFor(() => log.has('warn', /no credential for server_id 111111 yet .*answers 401/), {
      timeoutMs: 5_000,
      what: 'the missing credential in the log',
    });

    // run-once (another process) enrolls and stores the credential; serve picks it up.
    const { state } = await AgentState.open(join(work.path, 'state'));
    await state.setCredential(SERVER_ID, api.url, 'ubc_issued', new Date().toISOString());
    await waitFor(async () => (await pullStatus(port)) === 200, { timeoutMs: 15_000, what: 'a served pull' });
    expect(api.keyRequests).toBeGreaterThanOrEqual(1);
    const stored = await AgentState.open(join(work.path, 'state'));
    expect(stored.state.ticketPublicKey()).toBe(exportPublicKey(keys.publicKey));
  });

  it('serve: keeps answering 401 while the server does not give the key, then serves', async () => {
    const api = await startFakeApi(exportPublicKey(keys.publicKey));
    api.keyStatus = 503;
    cleanups.push(() => api.close());
    const { state } = await AgentState.open(join(work.path, 'state'));
    await state.setCredential(SERVER_ID, api.url, 'ubc_issued', new Date().toISOString());
    const port = await freePort();
    const serve = await runAgentServe({ configPath: await writeConfig(api.url, port), log, random: () => 0 });
    cleanups.push(() => serve.close());
    await waitFor(() => log.has('error', /cannot fetch the server's ticket key: .*503/), {
      timeoutMs: 10_000,
      what: 'the failed key fetch in the log',
    });
    expect(await pullStatus(port)).toBe(401);
    api.keyStatus = 200;
    await waitFor(async () => (await pullStatus(port)) === 200, { timeoutMs: 15_000, what: 'a served pull' });
  });

  it('serve: a stored key is used at once; the port in use and unreadable TLS files are startup errors', async () => {
    const { state } = await AgentState.open(join(work.path, 'state'));
    await state.setTicketPublicKey(exportPublicKey(keys.publicKey));
    const port = await freePort();
    // No server at server_url at all: the stored key is enough.
    const configPath = await writeConfig('http://127.0.0.1:9', port);
    const serve = await runAgentServe({ configPath, log });
    cleanups.push(() => serve.close());
    expect(await pullStatus(port)).toBe(200);

    const second = runAgentServe({ configPath, log });
    await expect(second).rejects.toBeInstanceOf(AgentStartError);
    await expect(second).rejects.toThrow(/cannot listen on http:\/\/127\.0\.0\.1:\d+/);

    const missing = join(work.path, 'no-cert.pem');
    const tlsConfig = await writeConfig('http://127.0.0.1:9', await freePort(), {
      global: [`tls_cert = ${missing}`, `tls_key = ${missing}`],
    });
    await expect(runAgentServe({ configPath: tlsConfig, log })).rejects.toThrow(
      /\[global\] tls_cert: cannot read .*no-cert\.pem/,
    );
    const garbage = join(work.path, 'garbage.pem');
    await writeFile(garbage, 'not a pem');
    const garbageConfig = await writeConfig('http://127.0.0.1:9', await freePort(), {
      global: [`tls_cert = ${garbage}`, `tls_key = ${garbage}`],
    });
    await expect(runAgentServe({ configPath: garbageConfig, log })).rejects.toThrow(/\[global\] tls_cert: /);
  });

  it('the daemon serves files once the enrollment gave it the key, and stops serving on stop()', async () => {
    const api = await startFakeApi(exportPublicKey(keys.publicKey));
    cleanups.push(() => api.close());
    const port = await freePort();
    const daemon = await startAgentDaemon({
      configPath: await writeConfig(api.url, port, { enroll: true }),
      log,
      random: () => 0,
    });
    let stopped = false;
    cleanups.push(async () => {
      if (!stopped) await daemon.stop();
    });
    await waitFor(async () => (await pullStatus(port)) === 200, { timeoutMs: 15_000, what: 'a served pull' });
    expect(log.has('info', /file server for storage nodes listening on http:\/\/127\.0\.0\.1:\d+/)).toBe(
      true,
    );
    await daemon.stop();
    stopped = true;
    await expect(pullStatus(port)).rejects.toThrow();
  });

  it('the daemon keeps running backups when its port is taken, and binds once the port is free', async () => {
    const api = await startFakeApi(exportPublicKey(keys.publicKey));
    cleanups.push(() => api.close());
    const blocker = createServer();
    await new Promise<void>((resolveListen) => blocker.listen(0, '127.0.0.1', resolveListen));
    const port = (blocker.address() as AddressInfo).port;
    const daemon = await startAgentDaemon({
      configPath: await writeConfig(api.url, port, { enroll: true }),
      log,
      random: () => 0,
    });
    cleanups.push(() => daemon.stop());
    expect(log.has('error', /the file server cannot listen on http:\/\/127\.0\.0\.1:\d+/)).toBe(true);
    await new Promise<void>((resolveClose) => blocker.close(() => resolveClose()));
    await waitFor(async () => (await pullStatus(port).catch(() => 0)) === 200, {
      timeoutMs: 20_000,
      what: 'the file server on the freed port',
    });
  });
});
