import { defineConfig } from 'vitest/config';

// End-to-end tests: a real server binary on the embedded default and Debian's Chromium.
// Files run one after another: each starts its own server and browser, and the machine the
// tests run on may have two cores.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
