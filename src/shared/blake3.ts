import { createReadStream } from 'node:fs';
import { Blake3Hasher } from '@napi-rs/blake-hash';

export interface FileDigest {
  blake3: string;
  size: number;
}

/** Streams a file through BLAKE3 and returns its hex digest and byte count. */
export async function blake3File(path: string): Promise<FileDigest> {
  const hasher = new Blake3Hasher();
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hasher.update(chunk);
    size += chunk.length;
  }
  return { blake3: hasher.digest('hex'), size };
}

export const BLAKE3_HEX = /^[0-9a-f]{64}$/;
