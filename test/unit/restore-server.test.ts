import { randomBytes, sign } from 'node:crypto';
import { mkdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { type IncomingHttpHeaders, request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentLog } from '../../src/agent/delivery.js';
import { parseStoredPath, type RestoreServer, startRestoreServer } from '../../src/node/restore-server.js';
import { type Sidecar, sidecarPath } from '../../src/node/storage-layout.js';
import { blake3File } from '../../src/shared/blake3.js';
import {
  generateTicketKeys,
  signTicket,
  type TicketClaims,
  type TicketKeyPair,
} from '../../src/shared/ticket.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

/** The node's restore server, against real files, real Ed25519 tickets and a real listening socket. */

const NODE = 'node-a';
const SIZE = 2 * 1024 * 1024 + 4321;
const BACKUP_ID = 42;

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
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One raw request (no URL normalization, so traversal reaches the server as sent). */
function call(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.body.toString('utf8')) as { error: { code: string } }).error.code;
}

let dir: TempDir;
let root: string;
let keys: TicketKeyPair;
let content: Buffer;
let digest: string;
let server: RestoreServer;
let log: MemoryLog;
let key: TicketKeyPair['publicKey'] | null;

function claimsFor(overrides: Partial<TicketClaims> = {}): TicketClaims {
  return {
    v: 1,
    purpose: 'restore',
    job_id: null,
    backup_id: BACKUP_ID,
    server_id: '5001',
    type: 'mysql',
    instance: '3306',
    filename: 'full-1.xb',
    size: SIZE,
    blake3: digest,
    node: NODE,
    exp: Date.now() + 60_000,
    ...overrides,
  };
}

function ticket(overrides: Partial<TicketClaims> = {}, signer = keys): string {
  return signTicket(claimsFor(overrides), signer.privateKey);
}

/** A ticket whose claims skip the schema (as a forger with the key could write them). */
function rawTicket(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify(claims), 'utf8');
  return `${payload.toString('base64url')}.${sign(null, payload, keys.privateKey).toString('base64url')}`;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function store(
  gameId: string,
  identity: { type: string; server_id: string; instance: string; filename: string },
  bytes: Buffer,
  sidecar: Partial<Sidecar> = {},
): Promise<string> {
  const folder = join(root, gameId, identity.type, identity.server_id, identity.instance);
  await mkdir(folder, { recursive: true });
  const path = join(folder, identity.filename);
  await writeFile(path, bytes);
  const full: Sidecar = {
    backup_id: BACKUP_ID,
    report_id: 'r-1',
    blake3: (await blake3File(path)).blake3,
    size: bytes.length,
    created_at: new Date().toISOString(),
    kind: 'full',
    base_backup_id: null,
    game_id: gameId,
    ...identity,
    stored_at: new Date().toISOString(),
    ...sidecar,
  };
  await writeFile(sidecarPath(path), JSON.stringify(full));
  return path;
}

const IDENTITY = { type: 'mysql', server_id: '5001', instance: '3306', filename: 'full-1.xb' };
const url = `/v1/stored/${BACKUP_ID}`;

beforeEach(async () => {
  dir = await makeTempDir('restore-server');
  root = join(dir.path, 'root');
  await mkdir(join(root, '.incoming'), { recursive: true });
  // Other businesses, one with the same instance but another backup.
  await mkdir(join(root, '7', 'redis'), { recursive: true });
  keys = generateTicketKeys();
  key = keys.publicKey;
  content = randomBytes(SIZE);
  await store('31', IDENTITY, content);
  digest = (await blake3File(join(root, '31', 'mysql', '5001', '3306', 'full-1.xb'))).blake3;
  log = new MemoryLog();
  server = await startRestoreServer({
    listen: { host: '127.0.0.1', port: 0 },
    root,
    nodeName: NODE,
    publicKey: () => key,
    log,
  });
});

afterEach(async () => {
  await server.close();
  await dir.cleanup();
});

describe('serving a stored file', () => {
  it('sends the whole file to the bearer of a restore ticket for this node and backup', async () => {
    const answer = await call(server.port, url, bearer(ticket()));
    expect(answer.status).toBe(200);
    expect(answer.body.equals(content)).toBe(true);
    expect(answer.headers['content-length']).toBe(String(SIZE));
    expect(answer.headers['accept-ranges']).toBe('bytes');
    expect(answer.headers['x-ubackup-size']).toBe(String(SIZE));
    expect(answer.headers['x-ubackup-blake3']).toBe(digest);
    expect(
      log.lines.some(
        (l) => l.level === 'info' && /sent backup 42 31\/mysql\/5001\/3306\/full-1.xb/.test(l.message),
      ),
    ).toBe(true);
  });

  it('answers HEAD with the headers only', async () => {
    const answer = await call(server.port, url, bearer(ticket()), 'HEAD');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-length']).toBe(String(SIZE));
    expect(answer.body.length).toBe(0);
  });

  it('resumes with a range: bytes=N- and N-M give 206 and exactly those bytes', async () => {
    const cut = 1_000_003;
    const head = await call(server.port, url, { ...bearer(ticket()), range: `bytes=0-${cut - 1}` });
    expect(head.status).toBe(206);
    expect(head.headers['content-range']).toBe(`bytes 0-${cut - 1}/${SIZE}`);
    const rest = await call(server.port, url, { ...bearer(ticket()), range: `bytes=${cut}-` });
    expect(rest.status).toBe(206);
    expect(rest.headers['content-range']).toBe(`bytes ${cut}-${SIZE - 1}/${SIZE}`);
    expect(rest.headers['content-length']).toBe(String(SIZE - cut));
    expect(Buffer.concat([head.body, rest.body]).equals(content)).toBe(true);
    const middle = await call(server.port, url, { ...bearer(ticket()), range: 'bytes=10-19' });
    expect(middle.body.equals(content.subarray(10, 20))).toBe(true);
  });

  it('answers 416 to a range that starts at or past the end', async () => {
    for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`]) {
      const answer = await call(server.port, url, { ...bearer(ticket()), range });
      expect(answer.status).toBe(416);
      expect(answer.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(errorCode(answer)).toBe('range_not_satisfiable');
    }
  });

  it('finds the file whatever business directory holds it, by its sidecar', async () => {
    // The same path under another business, but another backup: not this one.
    await store('12', IDENTITY, randomBytes(100), { backup_id: 41 });
    const answer = await call(server.port, url, bearer(ticket()));
    expect(answer.status).toBe(200);
    expect(answer.body.equals(content)).toBe(true);
  });
});

describe('refusing tickets', () => {
  it('401 without a ticket, 503 while the node has no key', async () => {
    const none = await call(server.port, url);
    expect([none.status, errorCode(none)]).toEqual([401, 'no_ticket']);
    key = null;
    const early = await call(server.port, url, bearer(ticket()));
    expect([early.status, errorCode(early)]).toEqual([503, 'no_ticket_key']);
    expect(early.headers['retry-after']).toBe('5');
  });

  it('403 for a pull ticket', async () => {
    const answer = await call(server.port, url, bearer(ticket({ purpose: 'pull', job_id: 3 })));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'wrong_purpose']);
  });

  it('403 for a ticket issued to another node', async () => {
    const answer = await call(server.port, url, bearer(ticket({ node: 'node-b' })));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'wrong_node']);
  });

  it('403 when the URL names another backup than the ticket', async () => {
    const answer = await call(server.port, '/v1/stored/43', bearer(ticket()));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'wrong_backup']);
  });

  it('401 for an expired ticket', async () => {
    const answer = await call(server.port, url, bearer(ticket({ exp: Date.now() - 1 })));
    expect([answer.status, errorCode(answer)]).toEqual([401, 'ticket_expired']);
  });

  it('401 for a tampered ticket or one signed by another key', async () => {
    const good = ticket();
    const [payload = '', signature = ''] = good.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TicketClaims;
    const forged = Buffer.from(JSON.stringify({ ...claims, backup_id: 41 })).toString('base64url');
    const tampered = await call(server.port, '/v1/stored/41', bearer(`${forged}.${signature}`));
    expect([tampered.status, errorCode(tampered)]).toEqual([401, 'ticket_bad_signature']);
    const other = await call(server.port, url, bearer(ticket({}, generateTicketKeys())));
    expect([other.status, errorCode(other)]).toEqual([401, 'ticket_bad_signature']);
    const garbage = await call(server.port, url, bearer('not-a-ticket'));
    expect([garbage.status, errorCode(garbage)]).toEqual([401, 'ticket_malformed']);
  });

  it('refuses traversal in any claim', async () => {
    for (const field of ['type', 'server_id', 'instance', 'filename'] as const) {
      for (const bad of ['..', '../../etc', 'a/b', 'x\u0000y']) {
        const answer = await call(server.port, url, bearer(rawTicket({ ...claimsFor(), [field]: bad })));
        expect([answer.status, errorCode(answer)], `${field} = ${JSON.stringify(bad)}`).toEqual([
          401,
          'ticket_invalid_claims',
        ]);
      }
    }
    // A name the schema allows but the storage layout reserves.
    const reserved = await call(server.port, url, bearer(ticket({ filename: 'x.ubmeta.json' })));
    expect([reserved.status, errorCode(reserved)]).toEqual([403, 'invalid_path']);
  });

  it('refuses traversal and anything but /v1/stored/<id> in the URL, and lists no directory', async () => {
    const t = bearer(ticket());
    for (const [path, status] of [
      ['/v1/stored/', 400],
      ['/v1/stored/../../etc/passwd', 400],
      ['/v1/stored/42/..', 400],
      ['/v1/stored/%2e%2e', 400],
      ['/v1/stored/042', 400],
      ['/v1/stored/-1', 400],
      ['/v1/stored/99999999999999999999', 400],
      ['/', 404],
      ['/v1/files/5001/mysql/3306/full-1.xb', 404],
    ] as const) {
      const answer = await call(server.port, path, t);
      expect(answer.status, path).toBe(status);
      expect(answer.body.includes(content.subarray(0, 32))).toBe(false);
    }
    expect(parseStoredPath('/v1/stored/42?x=1')).toEqual({ ok: true, backupId: 42 });
    const post = await call(server.port, url, t, 'POST');
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
  });
});

describe('refusing files', () => {
  it('403 for a stored path that is a symlink out of the root', async () => {
    const outside = join(dir.path, 'secret.bin');
    await writeFile(outside, content);
    await rm(join(root, '31', 'mysql', '5001', '3306', 'full-1.xb'));
    await symlink(outside, join(root, '31', 'mysql', '5001', '3306', 'full-1.xb'));
    const answer = await call(server.port, url, bearer(ticket()));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'outside_root']);
  });

  it('403 for a business directory that is a symlink out of the root', async () => {
    const elsewhere = join(dir.path, 'elsewhere');
    await mkdir(elsewhere);
    await rm(join(root, '31'), { recursive: true });
    const target = join(elsewhere, 'mysql', '5001', '3306');
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'full-1.xb'), content);
    await symlink(elsewhere, join(root, '31'));
    const answer = await call(server.port, url, bearer(ticket()));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'outside_root']);
  });

  it('follows a symlink that stays inside the root', async () => {
    const inside = join(root, '31', 'mysql', '5001', '3306', 'real.bin');
    const link = join(root, '31', 'mysql', '5001', '3306', 'full-1.xb');
    await writeFile(inside, content);
    await rm(link);
    await symlink(inside, link);
    const answer = await call(server.port, url, bearer(ticket()));
    expect(answer.status).toBe(200);
    expect(answer.body.equals(content)).toBe(true);
  });

  it('409 when the size differs from the ticket (the ticket, or the file on disk)', async () => {
    const claimed = await call(server.port, url, bearer(ticket({ size: SIZE + 1 })));
    expect([claimed.status, errorCode(claimed)]).toEqual([409, 'size_mismatch']);
    await truncate(join(root, '31', 'mysql', '5001', '3306', 'full-1.xb'), SIZE - 1);
    const shrunk = await call(server.port, url, bearer(ticket()));
    expect([shrunk.status, errorCode(shrunk)]).toEqual([409, 'size_mismatch']);
  });

  it('409 when the sidecar records another digest than the ticket', async () => {
    const answer = await call(server.port, url, bearer(ticket({ blake3: 'b'.repeat(64) })));
    expect([answer.status, errorCode(answer)]).toEqual([409, 'checksum_mismatch']);
  });

  it('404 for a backup that is not stored here, or whose sidecar names another backup', async () => {
    const missing = await call(server.port, '/v1/stored/77', bearer(ticket({ backup_id: 77 })));
    expect([missing.status, errorCode(missing)]).toEqual([404, 'not_stored']);
    const elsewhere = await call(server.port, url, bearer(ticket({ instance: '3307' })));
    expect([elsewhere.status, errorCode(elsewhere)]).toEqual([404, 'not_stored']);
    await rm(sidecarPath(join(root, '31', 'mysql', '5001', '3306', 'full-1.xb')));
    const noSidecar = await call(server.port, url, bearer(ticket()));
    expect([noSidecar.status, errorCode(noSidecar)]).toEqual([404, 'not_stored']);
  });

  it('403 for a stored path that is not a regular file', async () => {
    const path = join(root, '31', 'mysql', '5001', '3306', 'full-1.xb');
    await rm(path);
    await mkdir(path);
    const answer = await call(server.port, url, bearer(ticket()));
    expect([answer.status, errorCode(answer)]).toEqual([403, 'not_a_file']);
  });
});
