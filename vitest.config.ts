import { availableParallelism } from "node:os"
import { configDefaults, defineConfig } from "vitest/config"

const workers = Math.max(3, availableParallelism() - 1)

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The scenarios over real minutes: `npm run test:long` (vitest.long.config.ts), run by .ci/run.
    exclude: [...configDefaults.exclude, "test/long/**"],
    // Three test files at once even on two cores (vitest's default there is one): much of a file's
    // time is spent waiting on child processes, sockets and latency, not computing. On two cores,
    // measured on the whole suite: 2 workers 170 s, 3 workers 150 s (the same CPU time; a fourth
    // would find no idle core). minWorkers as many: with fewer, vitest 3 ends the run with "Error:
    // Terminating worker thread" and leaves workers running after it exits.
    maxWorkers: workers,
    minWorkers: workers,
    // Test files share a worker's loaded modules (effect, src/) instead of loading them again per
    // file: measured on 18 unit files, 73 -> 34 s of CPU (npx vitest run --no-isolate). Tests must
    // not leave global state behind (process listeners, environment variables) for this.
    isolate: false,
    // Tests of a file marked concurrent (the CLI files, whose tests mostly wait on child processes)
    // run two at a time.
    maxConcurrency: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
