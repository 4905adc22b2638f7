import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * One HTTP/1.1 GET on a connection of its own (`node:net`, or `node:tls` for
 * https), made for large bodies of a known length: the storage node's pull of
 * a file from an agent.
 *
 *   httpGet()  ─connect, send the request─►  response head (status, headers)
 *   receive()  ─body bytes─►  a BodySink (straight into its buffers on plain TCP)
 *   text()     ─►  the start of an error body, for a message
 *
 * The head must end within MAX_HEAD_BYTES and be well formed (status line,
 * `name: value` lines, CRLF line ends); anything else fails with
 * HttpProtocolError. A 200 or 206 must carry a valid `Content-Length` and no
 * `Transfer-Encoding`: exactly that many bytes are delivered, never more (the
 * connection is not reused, so whatever follows is never read), and a
 * connection that ends earlier fails the body.
 *
 * Stall watchdog: no byte from the server for `timeoutMs` while we wait on it
 * (connecting, the head, the body) fails with HttpStallError. Time the caller
 * spends with the response (between the head and `receive`, or while its sink
 * holds the body back) does not count.
 *
 * On plain TCP the socket reads with `onread` into the sink's own buffers (no
 * allocation or copy per read); TLS sockets read through 'data' events and the
 * bytes are copied into the sink.
 */

export const MAX_HEAD_BYTES = 16 * 1024;
/** Reads that do not go straight into a sink land here (and are copied). */
const SCRATCH_BYTES = 64 * 1024;
/** Most raw bytes read for `text()` (the text itself is shorter). */
const MAX_TEXT_RAW_BYTES = 4 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\u0020-\u007e\u0080-\u00ff]*$/;
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: ([\t\u0020-\u007e\u0080-\u00ff]*))?$/;

/** The server's answer is not HTTP/1.1 as this client accepts it. */
export class HttpProtocolError extends Error {
  override readonly name = 'HttpProtocolError';
}

/** Nothing came from the server for `timeoutMs` while we were waiting on it. */
export class HttpStallError extends Error {
  override readonly name = 'HttpStallError';
  constructor(readonly timeoutMs: number) {
    super(`no data from the server for ${timeoutMs} ms`);
  }
}

export interface HttpGetOptions {
  /** http: or https: */
  url: string | URL;
  /** Request headers besides Host and Connection; names and values must be valid field syntax. */
  headers?: Readonly<Record<string, string>>;
  /** Silence from the server for this long fails the exchange (see the file comment). */
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * Certificates to trust for https instead of Node's default trust (the
   * bundled CAs and NODE_EXTRA_CA_CERTS). The server's name is always checked.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>;
}

/**
 * Where body bytes go. `space()` is written into from its start, then
 * `written(n)` says how many bytes landed there. When `written` returns a
 * promise, no more bytes arrive until it settles (a rejection fails the body);
 * after it resolves `space()` must be non-empty again.
 */
export interface BodySink {
  space(): Uint8Array;
  written(bytes: number): Promise<void> | undefined;
}

export interface HttpResponse {
  readonly status: number;
  readonly statusText: string;
  /** Lower-case names; a repeated field's values joined with ", ". */
  readonly headers: ReadonlyMap<string, string>;
  /** The validated `Content-Length`; null when absent. */
  readonly contentLength: number | null;
  /**
   * Delivers the body (exactly `contentLength` bytes) into `sink` and closes
   * the connection. Resolves once the last byte was written to the sink and
   * the sink's last promise settled.
   */
  receive(sink: BodySink): Promise<void>;
  /** Up to `limit` bytes of the body as UTF-8 text, then closes; never rejects (it stops at a stall, an error or the end). */
  text(limit: number): Promise<string>;
  /** Closes the connection, dropping whatever has not been read. Idempotent. */
  close(): void;
}

/** Connects, sends `GET`, and resolves with the response head. */
export function httpGet(options: HttpGetOptions): Promise<HttpResponse> {
  try {
    return new Exchange(options).start();
  } catch (error) {
    return Promise.reject(error);
  }
}

type Phase = 'head' | 'idle' | 'body' | 'text' | 'done';

interface Waiting<T> {
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

class Exchange implements HttpResponse {
  status = 0;
  statusText = '';
  headers = new Map<string, string>();
  contentLength: number | null = null;

  private readonly socket: Socket;
  private readonly userBuffer: boolean;
  private phase: Phase = 'head';
  private readonly timeoutMs: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort = (): void => this.fail(abortReason(this.signal));

  private readonly headBuffer = Buffer.allocUnsafe(MAX_HEAD_BYTES);
  private headLength = 0;
  private scratch: Buffer | null = null;
  /** Received body bytes not yet handed to the sink (a copy, or the scratch buffer while reading is stopped). */
  private pending: Uint8Array | null = null;
  /** Where the next onread read lands, and whether that is the sink's space. */
  private target: Uint8Array;
  private targetIsSink = false;
  /** Reading stopped: we wait on the caller or the sink, not on the server. */
  private held = false;
  /** The server's side of the connection has ended (or the connection is gone). */
  private ended = false;

  private sink: BodySink | null = null;
  private remaining = 0;
  private textRaw: Buffer[] = [];
  private textRawLength = 0;
  private textLimit = 0;

  private waitingHead: Waiting<HttpResponse> | null = null;
  private waitingBody: Waiting<void> | null = null;
  private waitingText: ((text: string) => void) | null = null;
  private failure: Error | null = null;

  constructor(options: HttpGetOptions) {
    this.timeoutMs = options.timeoutMs;
    this.signal = options.signal;
    const url = typeof options.url === 'string' ? new URL(options.url) : options.url;
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`unsupported protocol ${url.protocol} in ${url.href}`);
    }
    const request = requestHead(url, options.headers ?? {});
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.target = this.headBuffer;
    if (url.protocol === 'https:') {
      this.userBuffer = false;
      this.socket = tlsConnect({
        host,
        port,
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ...(options.ca !== undefined ? { ca: options.ca as string | Buffer | Array<string | Buffer> } : {}),
      });
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    } else {
      this.userBuffer = true;
      this.socket = netConnect({
        host,
        port,
        onread: { buffer: () => this.nextTarget(), callback: (bytes: number) => this.onRead(bytes) },
      });
      // Flowing, so that 'end' is emitted at EOF; the bytes themselves never pass through the stream.
      this.socket.resume();
    }
    this.socket.on('error', (error: Error) => this.fail(error));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('close', () => this.onEnd());
    this.socket.write(request);
  }

  start(): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      this.waitingHead = { resolve, reject };
      if (this.signal?.aborted) {
        this.onAbort();
        return;
      }
      this.signal?.addEventListener('abort', this.onAbort, { once: true });
      this.armTimer();
    });
  }

  receive(sink: BodySink): Promise<void> {
    if (this.phase !== 'idle')
      return Promise.reject(this.failure ?? new Error(`cannot receive in ${this.phase}`));
    if (this.contentLength === null || this.headers.has('transfer-encoding')) {
      this.close();
      return Promise.reject(new HttpProtocolError('the response has no Content-Length to receive'));
    }
    return new Promise<void>((resolve, reject) => {
      this.waitingBody = { resolve, reject };
      this.phase = 'body';
      this.sink = sink;
      this.remaining = this.contentLength ?? 0;
      const leftover = this.pending;
      this.pending = null;
      if (leftover !== null && leftover.length > this.remaining) {
        this.pending = leftover.subarray(0, this.remaining);
      } else {
        this.pending = leftover;
      }
      this.continueBody();
    });
  }

  text(limit: number): Promise<string> {
    if (this.phase !== 'idle') return Promise.resolve('');
    return new Promise<string>((resolve) => {
      this.waitingText = resolve;
      this.phase = 'text';
      this.textLimit = limit;
      const leftover = this.pending;
      this.pending = null;
      if (leftover !== null && leftover.length > 0) this.addText(leftover);
      if (this.phase !== 'text') return;
      if (this.ended) this.close();
      else this.resumeReading();
    });
  }

  close(): void {
    if (this.phase === 'done') return;
    this.finishText();
    this.end();
  }

  // -------------------------------------------------------------------------
  // Reading

  /** The buffer the next onread read fills (called by the socket after every read, and once at the start). */
  private nextTarget(): Uint8Array {
    this.targetIsSink = false;
    if (this.phase === 'head') {
      this.target = this.headBuffer.subarray(this.headLength);
    } else if (this.phase === 'body' && this.pending === null && this.sink !== null && this.remaining > 0) {
      const space = this.sinkSpace();
      if (space !== null && space.length > 0) {
        this.target = space.length > this.remaining ? space.subarray(0, this.remaining) : space;
        this.targetIsSink = true;
      } else {
        this.target = this.scratchBuffer();
      }
    } else {
      this.target = this.scratchBuffer();
    }
    return this.target;
  }

  /** onread callback: `bytes` landed at the start of `target`. False stops reading. */
  private onRead(bytes: number): boolean {
    if (this.phase === 'done') return false;
    this.timer?.refresh();
    if (this.phase === 'head') return this.onHeadBytes(bytes);
    if (this.phase === 'body' && this.targetIsSink) return this.onSinkBytes(bytes);
    return this.onBytes(this.target.subarray(0, bytes));
  }

  /** 'data' of a TLS socket. */
  private onData(chunk: Buffer): void {
    if (this.phase === 'done') return;
    this.timer?.refresh();
    let keepReading: boolean;
    if (this.phase === 'head') {
      const room = MAX_HEAD_BYTES - this.headLength;
      const copied = Math.min(room, chunk.length);
      chunk.copy(this.headBuffer, this.headLength, 0, copied);
      keepReading = this.onHeadBytes(copied, chunk.subarray(copied));
    } else {
      keepReading = this.onBytes(chunk);
    }
    if (!keepReading) this.socket.pause();
  }

  /** `bytes` more of the head are in headBuffer; `rest` (TLS only) followed them. */
  private onHeadBytes(bytes: number, rest?: Buffer): boolean {
    const searchFrom = Math.max(0, this.headLength - 3);
    this.headLength += bytes;
    const at = this.headBuffer.subarray(0, this.headLength).indexOf(CRLFCRLF, searchFrom);
    if (at < 0) {
      if (this.headLength >= MAX_HEAD_BYTES) {
        this.fail(new HttpProtocolError(`the response head exceeds ${MAX_HEAD_BYTES} bytes`));
      }
      return this.phase !== 'done';
    }
    try {
      this.parseHead(this.headBuffer.toString('latin1', 0, at));
    } catch (error) {
      this.fail(asError(error));
      return false;
    }
    // Body bytes that came with the head: copied, since the head buffer is not kept.
    const after = this.headBuffer.subarray(at + CRLFCRLF.length, this.headLength);
    const extra = rest !== undefined && rest.length > 0 ? rest : null;
    if (after.length > 0 || extra !== null) {
      this.pending = extra === null ? Buffer.from(after) : Buffer.concat([after, extra]);
    }
    this.phase = 'idle';
    this.hold();
    const waiting = this.waitingHead;
    this.waitingHead = null;
    waiting?.resolve(this);
    return false;
  }

  /** Bytes read into the sink's own space. */
  private onSinkBytes(bytes: number): boolean {
    this.remaining -= bytes;
    let wait: Promise<void> | undefined;
    try {
      wait = this.sink?.written(bytes);
    } catch (error) {
      this.fail(asError(error));
      return false;
    }
    return this.afterWritten(wait);
  }

  /** Bytes in a buffer of ours (scratch or a TLS chunk), valid until reading resumes. */
  private onBytes(data: Uint8Array): boolean {
    if (this.phase === 'text') {
      this.addText(data);
      return this.phase === 'text';
    }
    if (this.phase === 'idle') {
      // Read before reading stopped (TLS): kept for receive() or text().
      this.pending = this.pending === null ? Buffer.from(data) : Buffer.concat([this.pending, data]);
      return false;
    }
    if (this.phase !== 'body') return false;
    this.pending = data.length > this.remaining ? data.subarray(0, this.remaining) : data;
    return this.deliverPending();
  }

  /** Copies pending bytes into the sink; false when it asked us to wait (the rest stays pending). */
  private deliverPending(): boolean {
    while (this.pending !== null) {
      const pending = this.pending;
      if (pending.length === 0) {
        this.pending = null;
        break;
      }
      const space = this.sinkSpace();
      if (space === null) return false;
      if (space.length === 0) {
        this.fail(new Error('the body sink offered no space'));
        return false;
      }
      const n = Math.min(space.length, pending.length);
      space.set(n === pending.length ? pending : pending.subarray(0, n));
      this.pending = n === pending.length ? null : pending.subarray(n);
      this.remaining -= n;
      let wait: Promise<void> | undefined;
      try {
        wait = this.sink?.written(n);
      } catch (error) {
        this.fail(asError(error));
        return false;
      }
      if (!this.afterWritten(wait)) return false;
    }
    return true;
  }

  /** After the sink took bytes: done, wait for it, or read on. */
  private afterWritten(wait: Promise<void> | undefined): boolean {
    if (wait !== undefined) {
      this.hold();
      wait.then(
        () => this.continueBody(),
        (error: unknown) => this.fail(asError(error)),
      );
      return false;
    }
    if (this.remaining <= 0) {
      this.succeed();
      return false;
    }
    return true;
  }

  /** Delivers what is pending, then reads on (or finishes). */
  private continueBody(): void {
    if (this.phase !== 'body') return;
    if (!this.deliverPending()) return;
    if (this.remaining <= 0) {
      this.succeed();
      return;
    }
    if (this.ended) {
      this.fail(this.connectionEnded());
      return;
    }
    this.resumeReading();
  }

  private sinkSpace(): Uint8Array | null {
    try {
      return this.sink?.space() ?? null;
    } catch (error) {
      this.fail(asError(error));
      return null;
    }
  }

  private scratchBuffer(): Buffer {
    this.scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
    return this.scratch;
  }

  /** Stops waiting on the server: the caller or the sink has the next move. */
  private hold(): void {
    this.held = true;
    this.disarmTimer();
  }

  private resumeReading(): void {
    if (this.phase === 'done') return;
    this.held = false;
    this.armTimer();
    if (this.socket.isPaused() || this.userBuffer) this.socket.resume();
  }

  private onEnd(): void {
    this.ended = true;
    switch (this.phase) {
      case 'head':
        this.fail(this.connectionEnded());
        return;
      case 'text':
        this.close();
        return;
      case 'body':
        // Bytes still pending were received: only missing ones make this an error.
        if (this.remaining > (this.pending?.length ?? 0)) this.fail(this.connectionEnded());
        return;
      default:
        // 'idle': the caller has the head; receive() or text() finds what is missing.
        return;
    }
  }

  private connectionEnded(): Error {
    if (this.phase === 'head') {
      return new HttpProtocolError(
        this.headLength === 0
          ? 'the server closed the connection without answering'
          : 'the server closed the connection in the middle of the response head',
      );
    }
    const length = this.contentLength ?? 0;
    const received = length - this.remaining - (this.pending?.length ?? 0);
    return new Error(`the connection closed after ${Math.max(0, received)} of ${length} body bytes`);
  }

  // -------------------------------------------------------------------------
  // Error bodies

  private addText(data: Uint8Array): void {
    const room = MAX_TEXT_RAW_BYTES - this.textRawLength;
    const part = Buffer.from(data.subarray(0, Math.min(room, data.length)));
    this.textRaw.push(part);
    this.textRawLength += part.length;
    const { text, complete } = this.decodedText();
    if (
      complete ||
      text.length >= this.textLimit ||
      this.textRawLength >= MAX_TEXT_RAW_BYTES ||
      (this.contentLength !== null && this.textRawLength >= this.contentLength)
    ) {
      this.close();
    }
  }

  private decodedText(): { text: Buffer; complete: boolean } {
    const raw = Buffer.concat(this.textRaw);
    if (/\bchunked\b/i.test(this.headers.get('transfer-encoding') ?? '')) return decodeChunked(raw);
    return { text: raw, complete: false };
  }

  private finishText(): void {
    const resolve = this.waitingText;
    if (resolve === null) return;
    this.waitingText = null;
    const { text } = this.decodedText();
    resolve(text.subarray(0, this.textLimit).toString('utf8'));
  }

  // -------------------------------------------------------------------------
  // Endings

  private succeed(): void {
    if (this.phase !== 'body') return;
    const waiting = this.waitingBody;
    this.waitingBody = null;
    this.end();
    waiting?.resolve();
  }

  private fail(error: Error): void {
    if (this.phase === 'done') return;
    this.failure = error;
    if (this.phase === 'text') {
      this.close();
      return;
    }
    const head = this.waitingHead;
    const body = this.waitingBody;
    this.waitingHead = null;
    this.waitingBody = null;
    this.end();
    head?.reject(error);
    body?.reject(error);
  }

  private end(): void {
    this.phase = 'done';
    this.held = true;
    this.disarmTimer();
    this.signal?.removeEventListener('abort', this.onAbort);
    this.sink = null;
    this.pending = null;
    this.socket.destroy();
  }

  private armTimer(): void {
    if (this.phase === 'done' || this.held) return;
    if (this.timer === null) {
      this.timer = setTimeout(() => this.fail(new HttpStallError(this.timeoutMs)), this.timeoutMs);
    } else {
      this.timer.refresh();
    }
  }

  private disarmTimer(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }

  // -------------------------------------------------------------------------
  // The head

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const statusLine = lines[0] ?? '';
    const status = STATUS_LINE.exec(statusLine);
    if (status === null) throw new HttpProtocolError(`malformed status line "${printable(statusLine)}"`);
    this.status = Number(status[1]);
    this.statusText = status[2] ?? '';
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon) : '';
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
        throw new HttpProtocolError(`malformed header line "${printable(line)}"`);
      }
      const key = name.toLowerCase();
      const before = this.headers.get(key);
      this.headers.set(key, before === undefined ? value : `${before}, ${value}`);
    }
    if (this.status < 200) {
      throw new HttpProtocolError(`unexpected interim response ${this.status}`);
    }
    const length = this.headers.get('content-length');
    if (length !== undefined) this.contentLength = parseContentLength(length);
    if (this.status === 200 || this.status === 206) {
      const encoding = this.headers.get('transfer-encoding');
      if (encoding !== undefined) {
        throw new HttpProtocolError(
          `the server answered ${this.status} with Transfer-Encoding "${printable(encoding)}"; a Content-Length is required`,
        );
      }
      if (this.contentLength === null) {
        throw new HttpProtocolError(`the server answered ${this.status} without a Content-Length`);
      }
    }
  }
}

function requestHead(url: URL, headers: Readonly<Record<string, string>>): string {
  let head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'connection') continue;
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new TypeError(`invalid request header ${JSON.stringify(name)}`);
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

/** A Content-Length value: digits; repeats (from repeated fields) must agree. */
function parseContentLength(value: string): number {
  const values = new Set(value.split(',').map((v) => v.trim()));
  const [only] = values;
  if (
    values.size !== 1 ||
    only === undefined ||
    !/^\d{1,16}$/.test(only) ||
    !Number.isSafeInteger(Number(only))
  ) {
    throw new HttpProtocolError(`invalid Content-Length "${printable(value)}"`);
  }
  return Number(only);
}

/** The data of a chunked body as far as it goes; `complete` once its last chunk was seen. */
export function decodeChunked(raw: Buffer): { text: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    if (lineEnd < 0) break;
    const sizeText = raw.toString('latin1', at, lineEnd).split(';')[0]?.trim() ?? '';
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) break;
    const size = Number.parseInt(sizeText, 16);
    if (size === 0) return { text: Buffer.concat(parts), complete: true };
    const start = lineEnd + 2;
    parts.push(raw.subarray(start, Math.min(start + size, raw.length)));
    if (start + size + 2 > raw.length) break;
    at = start + size + 2;
  }
  return { text: Buffer.concat(parts), complete: false };
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Text safe to quote in one message line. */
function printable(text: string): string {
  const short = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we replace
  return short.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
