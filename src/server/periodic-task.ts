import type { Logger } from 'pino';

/**
 * Runs `run` every `everySeconds`, never two at once (a slow pass makes the
 * next one wait its turn rather than pile up). Errors are logged, not thrown:
 * the next pass tries again. `stop()` clears the timer and waits for a pass in
 * progress, so the catalog can be closed after it.
 */
export interface PeriodicTask {
  stop(): Promise<void>;
}

export function startPeriodicTask(options: {
  name: string;
  everySeconds: number;
  log: Logger;
  run: () => Promise<void>;
}): PeriodicTask {
  let current: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (current !== null) return;
    current = options
      .run()
      .catch((error: unknown) => options.log.error({ err: error }, `${options.name} failed`))
      .finally(() => {
        current = null;
      });
  }, options.everySeconds * 1000);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await current;
    },
  };
}
