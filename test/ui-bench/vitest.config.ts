import { defineConfig } from 'vitest/config';

// Measurements of the UI, kept out of the test suite: `npx vitest run -c test/ui-bench/vitest.config.ts`
// (after `npm run build`). They print numbers; they gate nothing.
export default defineConfig({
  test: { include: ['test/ui-bench/*.bench.ts'], testTimeout: 300_000, hookTimeout: 60_000 },
});
