import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Temporal's native bridge does not survive worker threads: one process per test file.
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    // Integration tests wait on real servers (LRO polling, scheduling, workflow runs).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Test files share one stack; running them one at a time keeps their cluster state apart.
    fileParallelism: false,
  },
});
