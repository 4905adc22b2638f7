/** The `code` of a Node system error (`ENOENT`, `ERR_STREAM_PREMATURE_CLOSE`, …), or undefined. */
export function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}
