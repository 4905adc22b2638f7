import { aptHint, type DbServer, must, run, startDbServer, waitReady } from './db-process.js';
import { freePort } from './free-port.js';
import { INSTALL_HINTS, requireTool } from './required-tool.js';

// Real Redis servers on free 127.0.0.1 ports, in their own process groups (see db-process.ts).

export interface RedisTools {
  server: string;
  cli: string;
}

/** redis-server and redis-cli; fails (never skips) when one is missing. */
export function redisTools(): RedisTools {
  return {
    server: requireTool('redis-server', INSTALL_HINTS['redis-server']),
    cli: requireTool('redis-cli', aptHint('redis-tools')),
  };
}

export interface RedisServer {
  server: DbServer;
  port: number;
}

/** `redis-cli -p <port> <args>`, trimmed; a nonzero exit is an error. */
export async function redisCommand(tools: RedisTools, port: number, ...args: string[]): Promise<string> {
  return (await must([tools.cli, '-h', '127.0.0.1', '-p', String(port), ...args])).trim();
}

/**
 * A server on a free port with `dataDir` as its `dir` (it loads `dump.rdb` from there if present),
 * no automatic saves and no AOF.
 */
export async function startRedis(tools: RedisTools, name: string, dataDir: string): Promise<RedisServer> {
  // freePort can race with another process: try again on another port if the bind fails.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const candidate = await freePort();
    const server = startDbServer(
      name,
      [
        tools.server,
        '--port',
        String(candidate),
        '--bind',
        '127.0.0.1',
        '--dir',
        dataDir,
        '--dbfilename',
        'dump.rdb',
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      'SIGTERM',
      dataDir,
    );
    try {
      await waitReady(server, `${name} to answer PING on port ${candidate}`, async () => {
        const result = await run([tools.cli, '-h', '127.0.0.1', '-p', String(candidate), 'PING'], {
          timeoutMs: 5_000,
        });
        return result.stdout.trim() === 'PONG';
      });
      return { server, port: candidate };
    } catch (error) {
      lastError = error;
      await server.stop();
      if (!/Address already in use/i.test(server.logs())) throw error;
    }
  }
  throw lastError;
}

/** Every key with its type and value, sorted, as JSON (one round trip, inside the server). */
const REDIS_SNAPSHOT_LUA = `
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then v = redis.call('GET', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'hash' then
    local flat = redis.call('HGETALL', k)
    v = {}
    for i = 1, #flat, 2 do v[#v + 1] = flat[i] .. '=' .. flat[i + 1] end
    table.sort(v)
  else v = t end
  out[#out + 1] = { k, t, v, redis.call('TTL', k) > 0 }
end
table.sort(out, function(a, b) return a[1] < b[1] end)
return cjson.encode(out)
`;

/** Every key, its type, its value and whether it expires, sorted by key. */
export async function redisSnapshot(tools: RedisTools, port: number): Promise<unknown> {
  return JSON.parse(await redisCommand(tools, port, 'EVAL', REDIS_SNAPSHOT_LUA, '0')) as unknown;
}

/** 2000 strings, a 300-field hash, a list, a set, a sorted set, a key with a TTL and one with control bytes. */
export const REDIS_SAMPLE_DATA_LUA = `for i = 1, 2000 do redis.call('SET', 'k:' .. i, string.rep('v' .. i, 1 + i % 7)) end
       for i = 1, 300 do redis.call('HSET', 'h:big', 'f' .. i, i) end
       redis.call('RPUSH', 'list', 'a', 'b', 'c', 'b')
       redis.call('SADD', 'set', 'x', 'y', 'z')
       redis.call('ZADD', 'zset', 1, 'one', 2.5, 'two', -3, 'minus')
       redis.call('SET', 'expiring', 'still here', 'EX', 86400)
       redis.call('SET', 'bytes', 'line1\\nline2\\ttab')
       return 1`;
