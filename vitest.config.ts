import { defineConfig } from 'vitest/config';

// Three projects: fast pure/in-process tests, end-to-end tests that start real
// processes and databases, and browser tests. The machine has two cores, so e2e and
// browser files run one at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          maxWorkers: 1,
        },
      },
      {
        // Debian's Chromium driven by playwright-core against real servers: one file at a time.
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // A page's effect reaches the API after a click, a request and a re-render: on a loaded
          // two-core machine that can take longer than expect.poll's default of one second.
          expect: { poll: { timeout: 15_000 } },
          fileParallelism: false,
          maxWorkers: 1,
        },
      },
    ],
  },
});
