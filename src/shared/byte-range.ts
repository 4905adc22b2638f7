/**
 * The single byte range a file server honours (RFC 9110 §14.2): one
 * `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several ranges, other units and a
 * malformed header are ignored (the whole file), which the RFC allows: a
 * client that resumes asks for one range and checks for 206.
 */

export type RangeDecision =
  | { kind: 'whole' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const SINGLE_BYTE_RANGE = /^bytes=(\d*)-(\d*)$/i;

/**
 * What to send for a `Range` header and a file of `size` bytes. One range is
 * honoured (`end` inclusive, clamped to the file); several ranges, other units
 * and malformed headers are ignored (whole file).
 */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'whole' };
  const match = SINGLE_BYTE_RANGE.exec(header.trim());
  if (match === null) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    // bytes=-n: the last n bytes.
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Number.POSITIVE_INFINITY : Number(last);
  if (end < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/** How to answer a satisfiable range of a file of `size` bytes. */
export interface RangeAnswer {
  status: 200 | 206;
  /** First byte sent. */
  start: number;
  /** Bytes sent (0 for an empty file). */
  length: number;
  /** Content-Length, Accept-Ranges and, for 206, Content-Range. */
  headers: { 'content-length': number; 'accept-ranges': 'bytes'; 'content-range'?: string };
  /** `bytes a-b of size` or `(size bytes)`, for a log line. */
  description: string;
}

export function answerRange(
  range: Exclude<RangeDecision, { kind: 'unsatisfiable' }>,
  size: number,
): RangeAnswer {
  if (range.kind === 'whole') {
    return {
      status: 200,
      start: 0,
      length: size,
      headers: { 'content-length': size, 'accept-ranges': 'bytes' },
      description: `(${size} bytes)`,
    };
  }
  const { start, end } = range;
  const length = end - start + 1;
  return {
    status: 206,
    start,
    length,
    headers: {
      'content-length': length,
      'accept-ranges': 'bytes',
      'content-range': `bytes ${start}-${end}/${size}`,
    },
    description: `bytes ${start}-${end} of ${size}`,
  };
}
