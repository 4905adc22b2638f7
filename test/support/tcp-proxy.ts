import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * What to do with a response whose first bytes just arrived from the upstream
 * server: pass it on, drop it unseen, reset both connections after passing
 * `bytes`, or pass `bytes` and then nothing more while keeping the connections
 * open (a stall).
 */
export type ResponseVerdict = 'forward' | 'drop' | { cutAfter: number } | { stallAfter: number };

export interface TcpProxyOptions {
  target: { host: string; port: number };
  /** Port to listen on (127.0.0.1); default a free one. */
  listenPort?: number;
  /**
   * Called when the first bytes of a response arrive, with the first line of
   * the request it answers (e.g. `POST /api/v1/reports HTTP/1.1`). `drop`
   * closes both sides without passing a byte on: the client never gets its answer.
   */
  onResponse?: (requestLine: string) => ResponseVerdict | Promise<ResponseVerdict>;
}

export interface TcpProxy {
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A small TCP proxy on 127.0.0.1 for cutting connections at chosen moments in tests. */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(options.target.port, options.target.host);
    sockets.add(client);
    sockets.add(upstream);
    let requestLine: string | null = null;
    let verdict: Promise<ResponseVerdict> | null = null;
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      // A new request on this connection: remember its first line for the verdict.
      if (verdict === null || requestLine === null)
        requestLine = chunk.toString('latin1').split('\r\n')[0] ?? '';
      upstream.write(chunk);
    });
    let passed = 0;
    let stalled = false;
    upstream.on('data', (chunk: Buffer) => {
      if (stalled) return;
      if (verdict === null) {
        const line = requestLine ?? '';
        passed = 0;
        verdict = Promise.resolve(options.onResponse ? options.onResponse(line) : 'forward');
      }
      client.pause();
      upstream.pause();
      void verdict.then((v) => {
        if (v === 'drop') return closeBoth();
        if (typeof v === 'object') {
          const limit = 'cutAfter' in v ? v.cutAfter : v.stallAfter;
          const room = Math.max(0, limit - passed);
          if (chunk.length >= room) {
            client.write(chunk.subarray(0, room));
            passed += room;
            if ('cutAfter' in v) {
              // Flush what was passed, then reset both sides.
              client.end(() => closeBoth());
            } else {
              stalled = true; // keep both open, pass nothing more
            }
            return;
          }
          passed += chunk.length;
          client.write(chunk);
          client.resume();
          upstream.resume();
          return;
        }
        client.write(chunk);
        client.resume();
        upstream.resume();
        // The next request on a kept-alive connection gets its own verdict.
        verdict = null;
        requestLine = null;
      });
    });
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', () => {
      upstream.destroy();
      sockets.delete(client);
    });
    upstream.on('close', () => {
      client.destroy();
      sockets.delete(upstream);
    });
  });
  await new Promise<void>((ready) => server.listen(options.listenPort ?? 0, '127.0.0.1', ready));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((closed) => server.close(() => closed()));
    },
  };
}
