import { openAgentRuntime, startHostFileServer } from './agent-daemon.js';
import type { AgentLog } from './delivery.js';

/**
 * `ubackup agent serve`: for hosts whose runs come from cron (`agent
 * run-once`), only the file server storage nodes pull from. It runs no
 * scripts and never enrolls (run-once does that, and two processes enrolling
 * at once would race for the one credential the server hands out): it uses
 * the stored credential, re-reading the state file until one appears, to
 * fetch the server's ticket key, and answers 401 until it has that key.
 */

export interface AgentServeOptions {
  configPath: string;
  log: AgentLog;
  /** Epoch-ms clock (ticket expiry); default Date.now. */
  now?: () => number;
  random?: () => number;
}

export interface AgentServe {
  /** The bound port. */
  port: number;
  /** Stops serving (connections in flight are cut; nodes resume with Range). */
  close(): Promise<void>;
}

/** Starts serving; throws AgentStartError for an unusable config, TLS file or port. */
export async function runAgentServe(options: AgentServeOptions): Promise<AgentServe> {
  const { log } = options;
  const runtime = await openAgentRuntime(options.configPath, log);
  const { global, state } = runtime;
  if (runtime.instances.length === 0) {
    log.warn(`${options.configPath} has no usable instance section: every pull will be refused`);
  }
  const server = await startHostFileServer(runtime, {
    configPath: options.configPath,
    log,
    now: options.now,
    random: options.random,
    onBindError: 'fail',
    credential: () => state.credentialFor(global.serverId),
  });
  const port = server.port();
  if (port === null) {
    // Cannot happen with onBindError 'fail'; close rather than serve nothing.
    await server.close();
    throw new Error('the file server did not start');
  }
  return {
    port,
    close: async () => {
      await server.close();
      log.info('file server stopped');
    },
  };
}
