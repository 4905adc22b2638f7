import { SingleBar } from 'cli-progress';

/**
 * The download progress of `ubackup restore`: one bar per file with bytes,
 * rate and ETA (cli-progress), on stderr and only when stderr is a terminal;
 * elsewhere (a pipe, a log file, cron) it prints nothing.
 */

export interface TransferProgress {
  /** A file starts; `done` bytes of it are already on disk (a resumed part). */
  begin(label: string, total: number, done: number): void;
  update(done: number): void;
  /** The file is done (`complete`) or its download stopped. */
  end(complete: boolean): void;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** `1.5 MiB`: binary multiples, as the rest of UBackup counts them. */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** `1h02m`, `3m05s`, `42s`; `--` when unknown. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/**
 * Bytes per second over the last few seconds: an exponentially weighted
 * average of the rate between updates, so a resume's head start and short
 * bursts do not distort it.
 */
export class RateMeter {
  private rate = 0;
  private last: { at: number; bytes: number } | null = null;
  constructor(private readonly halfLifeMs = 3000) {}

  reset(bytes: number, at: number): void {
    this.rate = 0;
    this.last = { at, bytes };
  }

  sample(bytes: number, at: number): number {
    if (this.last === null) {
      this.last = { at, bytes };
      return this.rate;
    }
    const elapsed = at - this.last.at;
    if (elapsed < 200) return this.rate;
    const instant = ((bytes - this.last.bytes) * 1000) / elapsed;
    const weight = 1 - 0.5 ** (elapsed / this.halfLifeMs);
    this.rate = this.rate === 0 ? instant : this.rate + (instant - this.rate) * weight;
    this.last = { at, bytes };
    return this.rate;
  }
}

const NONE: TransferProgress = { begin: () => undefined, update: () => undefined, end: () => undefined };

export function transferProgress(stream: NodeJS.WriteStream, now: () => number = Date.now): TransferProgress {
  if (!stream.isTTY) return NONE;
  const bar = new SingleBar({
    stream,
    format: ' {label} |{bar}| {percentage}% {done}/{size} {rate} ETA {eta}',
    barCompleteChar: '#',
    barIncompleteChar: '-',
    barsize: 24,
    hideCursor: true,
    fps: 5,
    clearOnComplete: false,
  });
  const meter = new RateMeter();
  let total = 0;
  let running = false;
  const payload = (done: number) => {
    const rate = meter.sample(done, now());
    return {
      done: formatBytes(done),
      size: formatBytes(total),
      rate: rate > 0 ? `${formatBytes(rate)}/s` : '-- B/s',
      eta: rate > 0 ? formatEta((total - done) / rate) : '--',
    };
  };
  return {
    begin(label, size, done) {
      if (running) bar.stop();
      total = size;
      meter.reset(done, now());
      bar.start(Math.max(1, size), size === 0 ? 1 : done, { label, ...payload(done) });
      running = true;
    },
    update(done) {
      if (running) bar.update(done, payload(done));
    },
    end(complete) {
      if (!running) return;
      if (complete) bar.update(Math.max(1, total), payload(total));
      bar.stop();
      running = false;
    },
  };
}
