import { connect, createServer, type Server, type Socket } from 'node:net';

/** What to do with a response whose first bytes just arrived from the upstream server. */
export type ResponseVerdict = 'forward' | 'drop';

export interface TcpProxyOptions {
  target: { host: string; port: number };
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
    upstream.on('data', (chunk: Buffer) => {
      if (verdict === null) {
        const line = requestLine ?? '';
        verdict = Promise.resolve(options.onResponse ? options.onResponse(line) : 'forward');
      }
      client.pause();
      upstream.pause();
      void verdict.then((v) => {
        if (v === 'drop') return closeBoth();
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
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
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
