import { defineConfig } from 'vitest/config';

const CHAOS = 'packages/web/test/chaos/**/*.test.ts';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './scripts/summary-reporter.ts'],
    // The chaos suite runs after the others, with the machine to itself: its fault timings and its
    // time budget in CI (8 minutes) assume no other test competes for the two cores.
    projects: [
      { extends: true, test: { name: 'suite', include: ['packages/*/test/**/*.test.ts'], exclude: [CHAOS], sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'chaos', include: [CHAOS], sequence: { groupOrder: 1 } } },
    ],
  },
});
