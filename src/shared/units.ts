/**
 * Sizes and durations as operators write them in config files.
 *
 * Sizes use binary multiples (K = 1024 bytes), as the old UBackup did for
 * `reserve` (GB) and `rsync_bwlimit` (KB/s). Durations are whole seconds.
 * Both return `null` for anything they do not understand, so the caller can
 * name the file, section and key in its own error message.
 */

export type SizeUnit = 'B' | 'K' | 'M' | 'G' | 'T';

const SIZE_MULTIPLIERS: Readonly<Record<SizeUnit, number>> = {
  B: 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

// number, then either a unit letter with an optional `B`/`iB`, or a bare `B`, or nothing.
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i;

/**
 * Parses `1000` (in `defaultUnit`), `500M`, `2T`, `1.5G`, `62000K`, `10GiB`,
 * `512b` into bytes. Case-insensitive. A fractional result is rounded to the
 * nearest byte. Returns null for negative, malformed or unsafe-integer values.
 */
export function parseSize(text: string, defaultUnit: SizeUnit): number | null {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) return null;
  const [, digits, letter, bytesOnly] = match;
  const unit = unitOf(letter, bytesOnly, defaultUnit);
  const bytes = Math.round(Number(digits) * SIZE_MULTIPLIERS[unit]);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

function unitOf(letter: string | undefined, bytesOnly: string | undefined, defaultUnit: SizeUnit): SizeUnit {
  if (letter !== undefined) return letter.toUpperCase() as SizeUnit;
  if (bytesOnly !== undefined) return 'B';
  return defaultUnit;
}

const DURATION_MULTIPLIERS: Readonly<Record<string, number>> = {
  '': 1,
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
};

const DURATION_PATTERN = /^(\d+)\s*([smhd]?)$/i;

/**
 * Parses `3600` (seconds), `90s`, `15m`, `2h`, `1d` into whole seconds.
 * Case-insensitive. Fractions are refused (`1.5h`: write `90m`).
 */
export function parseDurationSeconds(text: string): number | null {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return null;
  const [, digits = '', unit = ''] = match;
  const multiplier = DURATION_MULTIPLIERS[unit.toLowerCase()];
  if (multiplier === undefined) return null;
  const seconds = Number(digits) * multiplier;
  return Number.isSafeInteger(seconds) ? seconds : null;
}
