import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The demo's sample database host: backup scripts that follow the back_log
 * contract and write small real files, and the agent config that runs them.
 * Nothing here touches a real database.
 */

export interface SampleInstance {
  section: string;
  type: string;
  instance: string;
  /** Registered in the demo's registry; the unregistered one shows an illegal backup. */
  registered: boolean;
  script: 'chain' | 'single' | 'flaky';
  priority: 'critical' | 'high' | 'normal' | 'low';
}

export const SAMPLE_SERVER_ID = '100001';
export const SAMPLE_GAME_ID = '31';

export const SAMPLE_INSTANCES: readonly SampleInstance[] = [
  {
    section: 'mysql3306',
    type: 'mysql',
    instance: '3306',
    registered: true,
    script: 'chain',
    priority: 'high',
  },
  {
    section: 'redis6379',
    type: 'redis',
    instance: '6379',
    registered: true,
    script: 'single',
    priority: 'normal',
  },
  {
    section: 'pg5432',
    type: 'postgresql',
    instance: '5432',
    registered: true,
    script: 'flaky',
    priority: 'normal',
  },
  {
    section: 'ssdb8888',
    type: 'ssdb',
    instance: '8888',
    registered: false,
    script: 'single',
    priority: 'low',
  },
];

/** A full every third run, incrementals in between: back_log always, last_all_log for fulls. */
const CHAIN_SCRIPT = `#!/bin/sh
# usage: chain.sh BACK_DIR BACK_LOG LAST_ALL_LOG
set -eu
dir="$1"; log="$2"; last="$3"
mkdir -p "$dir"
runs=$(cat "$dir/.runs" 2>/dev/null || echo 0); runs=$((runs + 1)); echo "$runs" > "$dir/.runs"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ $((runs % 3)) -eq 1 ]; then name="full-$stamp.xb.gz"; else name="inc-$stamp.xb.gz"; fi
head -c 196608 /dev/urandom | gzip -1 > "$dir/$name"
printf 'ok\\n%s\\n' "$name" > "$log"
case "$name" in full-*) printf 'ok\\n%s\\n' "$name" > "$last" ;; esac
echo "wrote $name"
`;

/** Always a full (like a Redis RDB). */
const SINGLE_SCRIPT = `#!/bin/sh
# usage: single.sh BACK_DIR BACK_LOG PREFIX
set -eu
dir="$1"; log="$2"; prefix="$3"
mkdir -p "$dir"
name="$prefix-$(date -u +%Y%m%dT%H%M%SZ).gz"
head -c 131072 /dev/urandom | gzip -1 > "$dir/$name"
printf 'ok\\n%s\\n' "$name" > "$log"
echo "wrote $name"
`;

/** Fails every fourth run the way a real script reports it: "wrong" and the error. */
const FLAKY_SCRIPT = `#!/bin/sh
# usage: flaky.sh BACK_DIR BACK_LOG
set -eu
dir="$1"; log="$2"
mkdir -p "$dir"
runs=$(cat "$dir/.runs" 2>/dev/null || echo 0); runs=$((runs + 1)); echo "$runs" > "$dir/.runs"
if [ $((runs % 4)) -eq 0 ]; then
  printf 'wrong\\npg_dump: error: connection to server failed: Connection refused\\n' > "$log"
  echo "pg_dump failed" >&2
  exit 0
fi
name="pg-$(date -u +%Y%m%dT%H%M%SZ).dump"
head -c 65536 /dev/urandom > "$dir/$name"
printf 'ok\\n%s\\n' "$name" > "$log"
`;

export interface SampleHost {
  configPath: string;
  backupRoot: string;
}

/** Writes the scripts and the agent config under `dir`. */
export async function writeSampleHost(
  dir: string,
  options: { serverUrl: string; enrollToken: string; intervalSeconds: number; filePort: number },
): Promise<SampleHost> {
  const scripts = join(dir, 'scripts');
  const backupRoot = join(dir, 'host-backups');
  const logs = join(dir, 'host-logs');
  await Promise.all([
    mkdir(scripts, { recursive: true }),
    mkdir(backupRoot, { recursive: true }),
    mkdir(logs, { recursive: true }),
  ]);
  for (const [name, body] of [
    ['chain.sh', CHAIN_SCRIPT],
    ['single.sh', SINGLE_SCRIPT],
    ['flaky.sh', FLAKY_SCRIPT],
  ] as const) {
    await writeFile(join(scripts, name), body);
    await chmod(join(scripts, name), 0o755);
  }
  const lines = [
    '# The demo host. Same keys as /etc/uuzuback.conf; see docs/operations.md.',
    '[global]',
    `server_id = ${SAMPLE_SERVER_ID}`,
    `game_id = ${SAMPLE_GAME_ID}`,
    `server_url = ${options.serverUrl}`,
    `enroll_token = ${options.enrollToken}`,
    `state_dir = ${join(dir, 'agent-state')}`,
    'my_ip = 127.0.0.1',
    `listen = 127.0.0.1:${options.filePort}`,
    `interval = ${options.intervalSeconds}`,
    'jitter = 5',
    '',
  ];
  for (const s of SAMPLE_INSTANCES) {
    const backDir = join(backupRoot, s.section);
    const backLog = join(logs, `${s.section}.log`);
    const lastAllLog = join(logs, `${s.section}.last`);
    const script =
      s.script === 'chain'
        ? `sh ${join(scripts, 'chain.sh')} ${backDir} ${backLog} ${lastAllLog}`
        : s.script === 'flaky'
          ? `sh ${join(scripts, 'flaky.sh')} ${backDir} ${backLog}`
          : `sh ${join(scripts, 'single.sh')} ${backDir} ${backLog} ${s.type}`;
    lines.push(
      `[${s.section}]`,
      `back_type = ${s.type}`,
      `instance = ${s.instance}`,
      `back_dir = ${backDir}`,
      `back_log = ${backLog}`,
      ...(s.script === 'chain' ? [`last_all_log = ${lastAllLog}`] : []),
      `script = ${script}`,
      `priority = ${s.priority}`,
      'timeout = 120',
      '',
    );
    await mkdir(backDir, { recursive: true });
  }
  const configPath = join(dir, 'agent.conf');
  await writeFile(configPath, lines.join('\n'));
  return { configPath, backupRoot };
}

/** The demo's storage node: stores what the sample host reports under `<dir>/node-storage`. */
export async function writeSampleNode(
  dir: string,
  /** `restorePort`: where the node serves stored files for `ubackup restore` (loopback only). */
  options: { serverUrl: string; enrollToken: string; restorePort: number },
): Promise<string> {
  const root = join(dir, 'node-storage');
  await mkdir(root, { recursive: true });
  const path = join(dir, 'node.conf');
  await writeFile(
    path,
    [
      '# The demo storage node. Same keys as the old storage node; see docs/operations.md.',
      '[global]',
      `server_url = ${options.serverUrl}`,
      `enroll_token = ${options.enrollToken}`,
      `state_dir = ${join(dir, 'node-state')}`,
      'name = demo-node',
      `server_root_path = ${root}`,
      'reserve = 256M',
      'work_thread = 2',
      'heartbeat = 2',
      `listen = 127.0.0.1:${options.restorePort}`,
      '',
    ].join('\n'),
  );
  return path;
}
