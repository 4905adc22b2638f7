import type { FileHandle } from 'node:fs/promises';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { errnoCode } from './errno-code.js';

/** Size of one read of the served file, and of one write to the response. */
export const READ_CHUNK_BYTES = 1024 * 1024;
/** Read buffers per response: one can be read into while another is being written. */
const SEND_BUFFERS = 2;

/** The response closed before everything was sent: the client went away. */
export class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

/** True when a sendFileRange failure means the client went away (not a fault of the file). */
export function isClientGone(error: unknown): boolean {
  return error instanceof ClientGone || errnoCode(error) === 'ERR_STREAM_PREMATURE_CLOSE';
}

/** The head of a file response and the part of the file its body is. */
export interface FileRangeAnswer {
  status: number;
  headers: OutgoingHttpHeaders;
  /** First byte of the body. */
  start: number;
  /** Bytes in the body: its Content-Length. */
  length: number;
  /** True for HEAD: the head only. */
  headOnly: boolean;
}

/**
 * Writes the head of `answer`, then sends bytes `start` … `start + length - 1`
 * of `file` as the body (none for HEAD or an empty range) and ends the
 * response. Positional reads into SEND_BUFFERS reused buffers; a buffer is
 * read into again only once the socket has taken its previous write, which
 * also bounds what is queued on the response (backpressure).
 * `progress.bytesRead` counts what was read.
 *
 * Never sends more than `length` bytes (each read asks for at most what is
 * left) and never ends the response with fewer: when the file ends first (it
 * shrank while it was sent) or the response closes, the response is destroyed,
 * so the client sees a body shorter than its Content-Length, and the error is
 * thrown (ClientGone when the response closed; see isClientGone). `file` is
 * closed in every case.
 */
export async function sendFileRange(
  file: FileHandle,
  response: ServerResponse,
  answer: FileRangeAnswer,
  progress: { bytesRead: number },
): Promise<void> {
  const { start, length } = answer;
  let onClose = (): void => undefined;
  const closed = new Promise<Error | null>((resolveClosed) => {
    onClose = () =>
      resolveClosed(
        response.writableFinished ? null : new ClientGone('the response closed before it was complete'),
      );
    response.once('close', onClose);
  });
  try {
    response.writeHead(answer.status, answer.headers);
    if (answer.headOnly || length === 0) {
      response.end();
      return;
    }
    const chunk = Math.min(READ_CHUNK_BYTES, length);
    const buffers = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafe(chunk));
    // Settles (with null or an error, never rejects) when the socket has taken the buffer's last write.
    const taken: Array<Promise<Error | null> | null> = buffers.map(() => null);
    let sent = 0;
    for (let turn = 0; sent < length; turn = (turn + 1) % SEND_BUFFERS) {
      const buffer = buffers[turn] as Buffer;
      const previous = taken[turn];
      if (previous !== null && previous !== undefined) {
        const error = await Promise.race([previous, closed]);
        if (error !== null) throw error;
      }
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - sent), start + sent);
      if (bytesRead === 0) {
        throw new Error(`the file shrank while it was sent (${sent} of ${length} bytes read)`);
      }
      progress.bytesRead += bytesRead;
      sent += bytesRead;
      if (response.destroyed) throw new ClientGone('the response closed before it was complete');
      taken[turn] = new Promise<Error | null>((resolveTaken) => {
        response.write(buffer.subarray(0, bytesRead), (error) => resolveTaken(error ?? null));
      });
    }
    const finished = new Promise<Error | null>((resolveFinished) => {
      response.end((error?: Error | null) => resolveFinished(error ?? null));
    });
    const error = await Promise.race([finished, closed]);
    if (error !== null) throw error;
  } catch (error) {
    // Whatever was not sent, the client must see a short body, never a complete-looking one.
    response.destroy();
    throw error;
  } finally {
    response.off('close', onClose);
    await file.close().catch(() => undefined);
  }
}
