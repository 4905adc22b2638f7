/**
 * CSV as spreadsheets read it (RFC 4180): a header line, then one line per
 * row; a field with a comma, quote, CR or LF is quoted, quotes doubled. A
 * field that starts with `=`, `+`, `-` or `@` gets a leading `'` so a
 * spreadsheet does not run it as a formula.
 */
export function toCsv(
  header: readonly string[],
  rows: readonly (readonly (string | number | null)[])[],
): string {
  return `${[header, ...rows].map((row) => row.map(csvField).join(',')).join('\r\n')}\r\n`;
}

function csvField(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const safe = /^[=+\-@]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}
