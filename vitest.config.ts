import { defineConfig } from 'vitest/config';

// Two tiers: pure unit tests, and integration tests through the real HTTP server against the real Firestore
// emulator, which the global setup starts on a free port and stops.
export default defineConfig({
  test: {
    // Off Google Cloud there is no metadata server; skip the client's probe for one.
    env: { METADATA_SERVER_DETECTION: 'none' },
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
