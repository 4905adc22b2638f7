import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hookArgv, runHook } from '../../src/restore/run-hook.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

/** The --exec hook: real `sh`, file names that a shell would misread, exit statuses. */

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('restore-hook');
});
afterEach(async () => {
  await dir.cleanup();
});

async function capture(command: string, files: string[]): Promise<{ code: number | null; output: string }> {
  let output = '';
  const outcome = await runHook({
    command,
    files,
    restoreDir: dir.path,
    stdio: 'pipe',
    onOutput: (chunk) => {
      output += chunk.toString('utf8');
    },
  });
  return { code: outcome.exitCode, output };
}

describe('the restore hook', () => {
  it('gets the files as its arguments, in order, never through the shell', async () => {
    const files = [
      join(dir.path, 'full $(touch pwned) .xb'),
      join(dir.path, "inc 'quoted' ; rm -rf x"),
      join(dir.path, 'inc\nnewline`id`'),
    ];
    for (const file of files) await writeFile(file, 'x');
    const { code, output } = await capture(`printf '[%s]\\n'`, files);
    expect(code).toBe(0);
    expect(output).toBe(files.map((f) => `[${f}]\n`).join(''));
    expect(hookArgv('sh restore.sh', ['a', 'b'])).toEqual([
      '-c',
      'sh restore.sh "$@"',
      'ubackup-restore',
      'a',
      'b',
    ]);
  });

  it('runs a script with the files as its arguments and UBACKUP_FILES, UBACKUP_RESTORE_DIR', async () => {
    const script = join(dir.path, 'restore.sh');
    await writeFile(
      script,
      'echo "argc=$#"\nfor f in "$@"; do echo "arg=$f"; done\nprintf "files=%s\\n" "$UBACKUP_FILES"\necho "dir=$UBACKUP_RESTORE_DIR"\n',
    );
    const files = [join(dir.path, 'a b'), join(dir.path, 'c')];
    const { code, output } = await capture(`sh ${script}`, files);
    expect(code).toBe(0);
    expect(output).toBe(
      `argc=2\narg=${files[0]}\narg=${files[1]}\nfiles=${files[0]}\n${files[1]}\ndir=${dir.path}\n`,
    );
  });

  it('reports the exit status and a signal', async () => {
    expect((await capture('exit 9;', [])).code).toBe(9);
    const killed = await runHook({
      command: 'kill -TERM $$;',
      files: [],
      restoreDir: dir.path,
      stdio: 'pipe',
    });
    expect(killed).toEqual({ exitCode: null, signal: 'SIGTERM' });
  });
});
