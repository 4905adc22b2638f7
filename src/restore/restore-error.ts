/**
 * How `ubackup restore` ends (docs/operations.md, "Restore"). The codes are
 * part of the command line's contract: scripts and the dashboard's copied
 * command rely on them.
 */
export const RESTORE_EXIT = {
  ok: 0,
  /** Anything not below: a bug, or an answer from the server that is not a restore plan. */
  unexpected: 1,
  /** Bad or missing flags, a token the server refuses, a bad --at. */
  usage: 2,
  /** No backup at or before --at is stored and verified. */
  planNotFound: 3,
  /** The backup's chain misses a full or an incremental. */
  chainBroken: 4,
  /** A downloaded file's size or BLAKE3 differs from the catalog's (its .part is removed). */
  integrity: 5,
  /** The server or a node could not be reached, or refused or cut a download. */
  downloadFailed: 6,
  /** The --exec hook failed. */
  hookFailed: 7,
} as const;

export type RestoreExitCode = (typeof RESTORE_EXIT)[keyof typeof RESTORE_EXIT];

/** A restore that stops: the exit code, a stable machine-readable code and a message for people. */
export class RestoreError extends Error {
  override readonly name = 'RestoreError';
  constructor(
    readonly exitCode: RestoreExitCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
