/** `shepherd run --deployments FILE.json`: the built CLI over two MockServers (the file's mistakes: test/runDeployments.test.ts). */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { MockServer } from "../src/testing/index.js"
import { inputLines, KEY, readOut, runToEnd, tmp, writeInput } from "./cliHelpers.js"

describe("shepherd run --deployments", () => {
  it.scopedLive("routes over two deployments (keys from the variables the file names): every line written, a summary row per deployment", () =>
    Effect.gen(function* () {
      const a = yield* MockServer.make({ apiKey: KEY, rpm: 20, window: "2 seconds" })
      const b = yield* MockServer.make({ apiKey: "sk-b-0f9e8d7c6b5a", rpm: 20, window: "2 seconds" })
      const dir = tmp()
      const lines = inputLines(30).filter((line) => line.includes("/v1/chat/completions"))
      const input = writeInput(dir, lines)
      const file = Path.join(dir, "deployments.json")
      Fs.writeFileSync(file, JSON.stringify({
        deployments: [
          { name: "alpha", baseUrl: a.url, apiKeyEnv: "KEY_ALPHA", models: ["gpt-4.1-mini"], limits: { rpm: 20 } },
          { name: "beta", baseUrl: b.url, apiKeyEnv: "KEY_BETA", models: ["gpt-4.1-mini"], limits: { rpm: 20 }, priority: 1 }
        ]
      }))
      const out = Path.join(dir, "out.jsonl")
      const summary = Path.join(dir, "summary.json")
      const ended = yield* runToEnd([input, "--out", out, "--deployments", file, "--summary", summary, "--no-progress"], {
        KEY_ALPHA: KEY,
        KEY_BETA: "sk-b-0f9e8d7c6b5a",
        SHEPHERD_TEST_WINDOW: "2s"
      })
      expect(ended.code, ended.stderr).toBe(0)
      expect(readOut(out)).toHaveLength(lines.length)
      expect(ended.stderr).toMatch(/deployment\s+requests\s+succeeded\s+429s\s+cooldowns\s+cost/)
      expect(ended.stderr).toMatch(/alpha\s+\d+/)
      expect(ended.stderr).toMatch(/beta\s+\d+/)
      expect((yield* a.stats).rateLimited + (yield* b.stats).rateLimited).toBe(0)
      expect((yield* a.stats).requests).toBeGreaterThan(0)
      expect((yield* b.stats).requests).toBeGreaterThan(0)
      const written = JSON.parse(Fs.readFileSync(summary, "utf8")) as { deployments: ReadonlyArray<{ deployment: string; succeeded: number }> }
      expect(written.deployments.map((d) => d.deployment)).toEqual(["alpha", "beta"])
      expect(written.deployments.reduce((sum, d) => sum + d.succeeded, 0)).toBe(lines.length)
    }), 60_000)
})
