import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BodySink,
  decodeChunked,
  HttpProtocolError,
  HttpStallError,
  httpGet,
  MAX_HEAD_BYTES,
} from '../../src/shared/http-get.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const run = promisify(execFile);

/** Collects the body through a small buffer; `hold` may make it wait after some deliveries. */
class CollectingSink implements BodySink {
  readonly chunks: Buffer[] = [];
  private readonly buffer: Buffer;
  deliveries = 0;

  constructor(
    spaceBytes: number,
    private readonly hold: (delivery: number) => Promise<void> | undefined = () => undefined,
  ) {
    this.buffer = Buffer.alloc(spaceBytes);
  }

  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }

  space(): Uint8Array {
    return this.buffer;
  }

  written(bytes: number): Promise<void> | undefined {
    this.chunks.push(Buffer.from(this.buffer.subarray(0, bytes)));
    this.deliveries += 1;
    return this.hold(this.deliveries);
  }
}

const servers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const close of servers.splice(0)) await close();
});

/** A TCP server on 127.0.0.1:<random> that answers each connection with `answer` (after the request head). */
async function rawServer(
  answer: (socket: Socket, request: string) => void,
): Promise<{ url: string; connected: Promise<Socket> }> {
  const sockets = new Set<Socket>();
  let connected!: (socket: Socket) => void;
  const first = new Promise<Socket>((resolve) => {
    connected = resolve;
  });
  const server: Server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    connected(socket);
    let request = '';
    const onData = (data: Buffer): void => {
      request += data.toString('latin1');
      if (!request.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      answer(socket, request);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  servers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((closed) => server.close(() => closed()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/files/a/b`, connected: first };
}

async function httpServer(
  handler: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<{ url: string }> {
  const server = createHttpServer(handler);
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  servers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((closed) => server.close(() => closed()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/files/a/b?x=1` };
}

describe('httpGet', () => {
  it('sends the request, parses the head and delivers exactly the body', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 11);
    const seen: IncomingMessage[] = [];
    const { url } = await httpServer((request, response) => {
      seen.push(request);
      response.writeHead(206, 'Partial Content', {
        'content-length': body.length,
        'content-range': `bytes 5-${body.length + 4}/${body.length + 5}`,
        'x-twice': ['a', 'b'],
      });
      response.end(body);
    });
    const response = await httpGet({
      url,
      headers: { authorization: 'Bearer t', range: 'bytes=5-' },
      timeoutMs: 5000,
    });
    expect(response.status).toBe(206);
    expect(response.statusText).toBe('Partial Content');
    expect(response.contentLength).toBe(body.length);
    expect(response.headers.get('content-range')).toBe(`bytes 5-${body.length + 4}/${body.length + 5}`);
    expect(response.headers.get('x-twice')).toBe('a, b');
    const sink = new CollectingSink(64 * 1024);
    await response.receive(sink);
    expect(sink.body.equals(body)).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe('/v1/files/a/b?x=1');
    expect(seen[0]?.headers.authorization).toBe('Bearer t');
    expect(seen[0]?.headers.range).toBe('bytes=5-');
    expect(seen[0]?.headers.host).toBe(new URL(url).host);
  });

  it('delivers the bytes that came with the head, through spaces smaller than a read', async () => {
    const body = randomBytes(100_000);
    const { url } = await rawServer((socket) => {
      socket.end(
        Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]),
      );
    });
    const response = await httpGet({ url, timeoutMs: 5000 });
    const sink = new CollectingSink(777);
    await response.receive(sink);
    expect(sink.body.equals(body)).toBe(true);
    expect(sink.chunks.every((chunk) => chunk.length <= 777)).toBe(true);
  });

  it('waits while the sink holds the body back, without counting that time as a stall', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const { url } = await httpServer((_request, response) => {
      response.writeHead(200, { 'content-length': body.length });
      response.end(body);
    });
    const response = await httpGet({ url, timeoutMs: 200 });
    // Holding for longer than the stall timeout, twice.
    const sink = new CollectingSink(256 * 1024, (delivery) =>
      delivery === 1 || delivery === 3 ? new Promise((resolve) => setTimeout(resolve, 500)) : undefined,
    );
    await response.receive(sink);
    expect(sink.body.equals(body)).toBe(true);
  });

  it('takes exactly Content-Length bytes when more follow', async () => {
    const body = randomBytes(50_000);
    const { url } = await rawServer((socket) => {
      socket.end(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`),
          body,
          Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra'),
        ]),
      );
    });
    const response = await httpGet({ url, timeoutMs: 5000 });
    const sink = new CollectingSink(64 * 1024);
    await response.receive(sink);
    expect(sink.body.equals(body)).toBe(true);
  });

  it('an empty body', async () => {
    const { url } = await rawServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const response = await httpGet({ url, timeoutMs: 5000 });
    const sink = new CollectingSink(16);
    await response.receive(sink);
    expect(sink.deliveries).toBe(0);
  });

  it.each([
    [
      'a malformed status line',
      'HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n',
      /malformed status line "HTTP\/1\.1 OK"/,
    ],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', /malformed status line/],
    ['a header without a colon', 'HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\nhello', /malformed header line/],
    [
      'a folded header',
      'HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n',
      /malformed header line/,
    ],
    ['a bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', /malformed status line/],
    ['an interim response', 'HTTP/1.1 100 Continue\r\n\r\n', /unexpected interim response 100/],
    ['no Content-Length', 'HTTP/1.1 200 OK\r\n\r\nhello', /answered 200 without a Content-Length/],
    [
      'an invalid Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n',
      /invalid Content-Length "12abc"/,
    ],
    [
      'a negative Content-Length',
      'HTTP/1.1 206 OK\r\nContent-Length: -1\r\n\r\n',
      /invalid Content-Length "-1"/,
    ],
    [
      'two different Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
      /invalid Content-Length "5, 6"/,
    ],
    [
      'a chunked 200',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      /answered 200 with Transfer-Encoding "chunked"; a Content-Length is required/,
    ],
    ['a connection closed before answering', '', /closed the connection without answering/],
    [
      'a head cut short',
      'HTTP/1.1 200 OK\r\nContent-Le',
      /closed the connection in the middle of the response head/,
    ],
  ])('refuses %s', async (_what, answer, message) => {
    const { url } = await rawServer((socket) => socket.end(answer));
    const attempt = httpGet({ url, timeoutMs: 5000 });
    await expect(attempt).rejects.toThrow(message);
    await expect(attempt).rejects.toBeInstanceOf(HttpProtocolError);
  });

  it(`refuses a head longer than ${MAX_HEAD_BYTES} bytes`, async () => {
    const { url } = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(MAX_HEAD_BYTES)}\r\nContent-Length: 0\r\n\r\n`);
    });
    await expect(httpGet({ url, timeoutMs: 5000 })).rejects.toThrow(`exceeds ${MAX_HEAD_BYTES} bytes`);
  });

  it('refuses a node:http chunked answer (no Content-Length)', async () => {
    const { url } = await httpServer((_request, response) => {
      response.writeHead(200);
      response.write('some');
      response.end('bytes');
    });
    await expect(httpGet({ url, timeoutMs: 5000 })).rejects.toThrow(/Transfer-Encoding "chunked"/);
  });

  it('fails the body when the connection is cut mid-body', async () => {
    const { url } = await rawServer((socket) => {
      socket.end(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(400)}`);
    });
    const response = await httpGet({ url, timeoutMs: 5000 });
    const sink = new CollectingSink(100);
    await expect(response.receive(sink)).rejects.toThrow(
      'the connection closed after 400 of 1000 body bytes',
    );
    expect(sink.body.toString()).toBe('x'.repeat(400));
  });

  it('fails the body when the server resets the connection mid-body', async () => {
    const { url } = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(400)}`, () =>
        socket.resetAndDestroy(),
      );
    });
    const response = await httpGet({ url, timeoutMs: 5000 });
    await expect(response.receive(new CollectingSink(1000))).rejects.toThrow(/ECONNRESET|closed after/);
  });

  it('a stall while waiting for the head fails with HttpStallError', async () => {
    const { url } = await rawServer(() => undefined);
    const attempt = httpGet({ url, timeoutMs: 200 });
    await expect(attempt).rejects.toBeInstanceOf(HttpStallError);
    await expect(attempt).rejects.toThrow('no data from the server for 200 ms');
  });

  it('a stall mid-body fails with HttpStallError', async () => {
    const { url } = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(300)}`);
    });
    const response = await httpGet({ url, timeoutMs: 200 });
    const sink = new CollectingSink(1000);
    await expect(response.receive(sink)).rejects.toBeInstanceOf(HttpStallError);
    expect(sink.body.length).toBe(300);
  });

  it('the abort signal ends the exchange with its reason, before and during the body', async () => {
    const before = await rawServer(() => undefined);
    const controller = new AbortController();
    const waiting = httpGet({ url: before.url, timeoutMs: 5000, signal: controller.signal });
    await before.connected;
    controller.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');

    const during = await rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(300)}`);
    });
    const second = new AbortController();
    const response = await httpGet({ url: during.url, timeoutMs: 5000, signal: second.signal });
    const sink = new CollectingSink(1000, () => {
      second.abort(new Error('lease lost'));
      return undefined;
    });
    await expect(response.receive(sink)).rejects.toThrow('lease lost');

    const already = AbortSignal.abort(new Error('too late'));
    await expect(httpGet({ url: during.url, timeoutMs: 5000, signal: already })).rejects.toThrow('too late');
  });

  it('a sink that rejects fails the body with its error', async () => {
    const { url } = await httpServer((_request, response) => {
      response.writeHead(200, { 'content-length': 100_000 });
      response.end(Buffer.alloc(100_000));
    });
    const response = await httpGet({ url, timeoutMs: 5000 });
    const sink = new CollectingSink(1000, () => Promise.reject(new Error('disk full')));
    await expect(response.receive(sink)).rejects.toThrow('disk full');
  });

  it('reads the start of an error body as text, chunked or not', async () => {
    const { url } = await httpServer((request, response) => {
      if (request.headers.range === 'plain') {
        response.writeHead(503, { 'content-type': 'text/plain', 'content-length': 4 }).end('busy');
      } else if (request.headers.range === 'long') {
        response.writeHead(500, { 'content-length': 10_000 }).end('y'.repeat(10_000));
      } else {
        response.writeHead(404);
        response.write('no such ');
        response.end('file');
      }
    });
    const plain = await httpGet({ url, headers: { range: 'plain' }, timeoutMs: 5000 });
    expect(plain.status).toBe(503);
    expect(await plain.text(300)).toBe('busy');
    const chunked = await httpGet({ url, timeoutMs: 5000 });
    expect(chunked.status).toBe(404);
    expect(await chunked.text(300)).toBe('no such file');
    const long = await httpGet({ url, headers: { range: 'long' }, timeoutMs: 5000 });
    expect(await long.text(300)).toBe('y'.repeat(300));
  });

  it('text() stops at a stall with what it has', async () => {
    const { url } = await rawServer((socket) => {
      socket.write('HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\noverloaded');
    });
    const response = await httpGet({ url, timeoutMs: 200 });
    expect(await response.text(300)).toBe('overloaded');
  });

  it('refuses request headers that would break the request, and other protocols', async () => {
    await expect(
      httpGet({ url: 'http://127.0.0.1:1/', headers: { 'x-a': 'b\r\nx-c: d' }, timeoutMs: 1 }),
    ).rejects.toThrow(TypeError);
    await expect(httpGet({ url: 'ftp://127.0.0.1/', timeoutMs: 1 })).rejects.toThrow(/unsupported protocol/);
  });

  it('reports a refused connection', async () => {
    const { url } = await rawServer(() => undefined);
    await servers.pop()?.();
    await expect(httpGet({ url, timeoutMs: 5000 })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('decodeChunked', () => {
  it('decodes what is complete, with extensions', () => {
    expect(decodeChunked(Buffer.from('4;a=b\r\nbusy\r\n3\r\n!!!\r\n0\r\n\r\n'))).toEqual({
      text: Buffer.from('busy!!!'),
      complete: true,
    });
    expect(decodeChunked(Buffer.from('4\r\nbu'))).toEqual({ text: Buffer.from('bu'), complete: false });
    expect(decodeChunked(Buffer.from('zz\r\nbusy'))).toEqual({ text: Buffer.alloc(0), complete: false });
  });
});

describe('httpGet over TLS', () => {
  let dir: TempDir | null = null;

  afterEach(async () => {
    await dir?.cleanup();
    dir = null;
  });

  it('verifies the certificate against the given CA and the host name', async () => {
    dir = await makeTempDir('ubackup-http-get-tls');
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
    const body = randomBytes(1024 * 1024 + 5);
    const server = createHttpsServer({ cert, key: await readFile(keyFile, 'utf8') }, (_request, response) => {
      response.writeHead(200, { 'content-length': body.length });
      response.end(body);
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    servers.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((closed) => server.close(() => closed()));
    });
    const port = (server.address() as AddressInfo).port;

    const response = await httpGet({ url: `https://127.0.0.1:${port}/f`, ca: cert, timeoutMs: 5000 });
    expect(response.status).toBe(200);
    const sink = new CollectingSink(100_000);
    await response.receive(sink);
    expect(sink.body.equals(body)).toBe(true);

    // Default trust: a self-signed certificate is refused.
    await expect(httpGet({ url: `https://127.0.0.1:${port}/f`, timeoutMs: 5000 })).rejects.toThrow(
      /self-signed|self signed/,
    );
    // The right CA but another name: refused.
    await expect(httpGet({ url: `https://localhost:${port}/f`, ca: cert, timeoutMs: 5000 })).rejects.toThrow(
      /localhost|ECONNREFUSED/,
    );
    // Plain HTTP to the TLS port gets no valid answer.
    await expect(httpGet({ url: `http://127.0.0.1:${port}/f`, timeoutMs: 5000 })).rejects.toThrow(
      HttpProtocolError,
    );
  });
});
