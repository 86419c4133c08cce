import { defineConfig } from "vitest/config"

/** `npm run test:long`: the multi-process scenarios over real one-minute windows (minutes each). */
export default defineConfig({
  test: {
    include: ["test/long/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 60_000
  }
})
