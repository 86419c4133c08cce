/** `--deployments FILE.json` read in process: its Schema, keys from the variables it names, and each mistake's path (exit 2). */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as RunDeployments from "../src/cli/runDeployments.js"

const fileWith = (content: unknown) => {
  const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-deployments-")), "deployments.json")
  Fs.writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content))
  return file
}

const problem = (content: unknown) => Effect.map(Effect.flip(RunDeployments.read(fileWith(content), undefined)), (e) => ({ code: e.exitCode, detail: e.detail }))

const one = { name: "a", baseUrl: "http://127.0.0.1:9/v1", models: ["m"] }

describe("--deployments FILE.json", () => {
  it.effect("reads deployments, fallbacks and cooldown; each key from the variable it names", () =>
    Effect.gen(function* () {
      process.env["ROUTER_TEST_KEY"] = "sk-from-env-1234"
      const options = yield* RunDeployments.read(fileWith({
        deployments: [{ ...one, apiKeyEnv: "ROUTER_TEST_KEY", limits: { rpm: 60 }, priority: 2, maxRetries: 1 }, { ...one, name: "b", models: { m: "vendor/m" } }],
        fallbacks: { m: ["m"] },
        fallbackOn: ["unavailable"],
        cooldown: { failures: 2, initial: "2s" }
      }), undefined)
      delete process.env["ROUTER_TEST_KEY"]
      expect(Redacted.value(options.deployments[0]!.apiKey!)).toBe("sk-from-env-1234")
      expect(options.deployments[0]).toMatchObject({ name: "a", priority: 2, retry: { maxRetries: 1 }, limits: { rpm: 60 } })
      expect(options.deployments[1]!.models).toEqual({ m: "vendor/m" })
      expect(options.fallbackOn).toEqual(["unavailable"])
      expect(options.cooldown?.failures).toBe(2)
    }))

  it.effect("every mistake is a usage error (exit 2) naming its path in the file; a key written in it is refused unquoted", () =>
    Effect.gen(function* () {
      expect(yield* problem({ deployments: [{ ...one, limits: { rpm: 0 } }] })).toMatchObject({ code: 2, detail: expect.stringContaining("deployments.0.limits.rpm") })
      expect((yield* problem({ deployments: [] })).detail).toContain("deployments")
      expect((yield* problem({ deployments: [one], fallbackOn: ["always"] })).detail).toContain("fallbackOn.0")
      expect((yield* problem({ deployments: [{ ...one, modelz: ["m"] }] })).detail).toContain("deployments.0")
      expect((yield* problem({ deployments: [one], cooldown: { initial: "5" } })).detail).toContain("cooldown.initial")
      expect((yield* problem("{ not json")).detail).toContain("not readable as JSON")
      // JSON.parse quotes the text around its fault: a key written unquoted must not be shown.
      const broken = yield* problem('{ "deployments": [{ "name": "a", "apiKey": sk-unquoted-secret }] }')
      expect(broken.detail).toContain("not readable as JSON")
      expect(broken.detail).not.toContain("sk-u")
      const key = yield* problem({ deployments: [one, { ...one, name: "b", apiKey: "sk-in-the-file" }] })
      expect(key.detail).toContain("deployments.1.apiKey")
      expect(key.detail).not.toContain("sk-in-the-file")
      const header = yield* problem({ deployments: [one, { ...one, name: "b", headers: { "Api-Key": "azure-key-in-the-file" } }] })
      expect(header.detail).toContain("deployments.1.headers.Api-Key")
      expect(header.detail).not.toContain("azure-key-in-the-file")
      const unset = yield* problem({ deployments: [{ ...one, apiKeyEnv: "ROUTER_TEST_UNSET_VARIABLE" }] })
      expect(unset.detail).toContain("deployments.0.apiKeyEnv names ROUTER_TEST_UNSET_VARIABLE, which is not set")
    }))

  it("the summary has a row per deployment: requests, 429s, cooldowns, cost", () => {
    const text = RunDeployments.rows([{ deployment: "alpha", requests: 12, succeeded: 11, rateLimited: 1, cooldowns: 0, costUsd: 0.0123 }])
    expect(text).toMatch(/deployment\s+requests\s+succeeded\s+429s\s+cooldowns\s+cost\n\s+alpha\s+12\s+11\s+1\s+0\s+\$0\.0123/)
  })
})
