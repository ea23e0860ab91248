import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One process per file: suites start their own servers and local AWS endpoint and must not share state.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The suite prints a plain summary line itself (scripts/test.sh).
    passWithNoTests: false,
    globalSetup: ['test/support/globalSetup.ts'],
  },
});
