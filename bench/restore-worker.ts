/**
 * The restoring side of `bench/transfer.ts`'s restore set, in its own process
 * so that its peak RSS and CPU time are its own. Downloads the files of
 * `--files` (a JSON array of RestoreDownload) one after the other, in chain
 * order, with the downloader `ubackup restore` uses (Range-resumable, BLAKE3
 * verified, renamed into place), and prints one JSON line (WorkerResult).
 *
 *   node dist/bench/restore-worker.js --files <file.json>
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { downloadFile } from '../src/restore/download-file.js';
import { measureWork } from './worker-result.js';

/** One file of the chain, as the restore plan hands it over. */
export interface RestoreDownload {
  url: string;
  ticket: string;
  dest: string;
  size: number;
  blake3: string;
}

const { values } = parseArgs({ options: { files: { type: 'string' } } });
if (values.files === undefined) {
  console.error('usage: restore-worker --files <file.json>');
  process.exit(2);
}
const files = JSON.parse(readFileSync(values.files, 'utf8')) as RestoreDownload[];

const work = measureWork();
const failures: string[] = [];
let bytes = 0;
for (const file of files) {
  try {
    const result = await downloadFile({ ...file, attempts: 1 });
    if (result.reused || result.bytesTransferred !== file.size)
      failures.push(`${file.dest}: not downloaded whole`);
    else bytes += result.size;
  } catch (error) {
    failures.push(`${file.dest}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
work.finish({ bytes, failures });
