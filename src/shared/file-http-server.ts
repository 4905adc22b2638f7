import {
  createServer as createHttpServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import { describeError } from './describe-error.js';
import { printable } from './printable.js';

/**
 * The lifecycle shared by the file servers (the agent's for pulls, the node's
 * for restores): timeouts, listening, requests in flight, and a close that
 * cuts open connections (a client resumes with Range) and waits for the
 * handlers.
 */

/** Time to receive a request's headers. */
export const HEADERS_TIMEOUT_MS = 20_000;
/** Time to receive a whole request (a GET has no body, so little more than its headers). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A connection on which nothing moves for this long is closed (a stalled client releases the file). */
export const IDLE_SOCKET_TIMEOUT_MS = 120_000;
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface FileHttpServerOptions {
  listen: { host: string; port: number };
  /** Log prefix, e.g. `file server`. */
  name: string;
  log: { error(message: string): void };
  /** Answers one request; what it throws is logged and answered by `answerFailure`. */
  handle: (request: IncomingMessage, response: ServerResponse) => Promise<void>;
  /** Answers a request whose handler threw before the response head was sent. */
  answerFailure: (response: ServerResponse) => void;
  /** Makes the server (e.g. HTTPS); default plain HTTP. */
  createServer?: (options: ServerOptions, onRequest: RequestListener) => Server;
}

export interface FileHttpServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** Stops listening, cuts open connections and waits for the handlers. */
  close(): Promise<void>;
}

export async function startFileHttpServer(options: FileHttpServerOptions): Promise<FileHttpServer> {
  const { log, name, handle, answerFailure } = options;
  const inFlight = new Set<Promise<void>>();
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const done = handle(request, response)
      .catch((error: unknown) => {
        log.error(
          `${name}: ${request.method} ${printable(request.url ?? '')} failed: ${describeError(error)}`,
        );
        if (!response.headersSent) answerFailure(response);
        else response.destroy();
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };

  const create = options.createServer ?? createHttpServer;
  const server = create(
    {
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    },
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
  server.on('error', (error) => log.error(`${name}: ${describeError(error)}`));

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
