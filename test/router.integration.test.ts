/** `ChatClient.layerRouter` against several real MockServers with different limits and faults, and its option checks. */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import { ChatClient, Metrics, Router } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

/** A loopback port nobody listens on: connections to it are refused. */
const refusedPort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

const N = 60
const window = "2 seconds" as const

describe("ChatClient.layerRouter against MockServers", () => {
  it.scopedLive(`one refusing connections, one 5xx for a while, one slow, one tightly limited: all ${N} requests succeed, no 429, each answered once`, () =>
    Effect.gen(function* () {
      const refused = yield* refusedPort
      const flaky = yield* MockServer.make({ script: Array.from({ length: 6 }, () => ({ type: "server_error" as const, status: 503 as const })), rpm: 30, window })
      const slow = yield* MockServer.make({ latency: "300 millis", rpm: 30, window })
      const limited = yield* MockServer.make({ rpm: 10, window })
      const limits = (rpm: number) => ({ rpm, window })
      const context = yield* Layer.build(ChatClient.layerRouter({
        deployments: [
          { name: "refused", baseUrl: `http://127.0.0.1:${refused}/v1`, models: ["gpt-4.1-mini"], limits: limits(30) },
          { name: "flaky", baseUrl: flaky.url, models: ["gpt-4.1-mini"], limits: limits(30) },
          { name: "slow", baseUrl: slow.url, models: ["gpt-4.1-mini"], limits: limits(30), priority: 1 },
          { name: "limited", baseUrl: limited.url, apiKey: Redacted.make("sk-limited"), models: { "gpt-4.1-mini": "gpt-4.1-mini-2025" }, limits: limits(10) }
        ],
        cooldown: { failures: 3, initial: "1 second" },
        client: { tracing: false, retry: { maxRetries: 2, initialDelay: "10 millis", maxDelay: "50 millis" } }
      }))
      const chat = Context.get(context, ChatClient.ChatClient)
      const results = yield* Effect.forEach(
        Array.from({ length: N }, (_, i) => i),
        (i) => chat.createWithMetadata({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `request ${i}` }] }),
        { concurrency: 20 }
      )
      results.forEach((r, i) => expect(r.completion.choices[0]!.message.content).toContain(`request ${i}`))
      expect(results.every((r) => r.route !== undefined && r.route.deployment !== "refused" && r.route.model === "gpt-4.1-mini")).toBe(true)
      const answered = new Map<string, number>()
      let rateLimited = 0
      for (const mock of [flaky, slow, limited]) {
        rateLimited += (yield* mock.stats).rateLimited
        for (const entry of yield* mock.journal) {
          if (entry.status === 429) rateLimited++
          if (entry.status !== 200) continue
          const content = JSON.stringify((entry.body as { messages: unknown }).messages)
          answered.set(content, (answered.get(content) ?? 0) + 1)
        }
      }
      expect(rateLimited).toBe(0)
      expect(answered.size).toBe(N)
      expect([...answered.values()].every((n) => n === 1)).toBe(true)
      // The alias reached the relay under its own name; the 5xx went past; the refused one cooled down.
      expect((yield* limited.journal).every((e) => (e.body as { model: string }).model === "gpt-4.1-mini-2025")).toBe(true)
      expect((yield* flaky.stats).byStatus["503"]).toBe(6)
      const stats = yield* Router.stats
      expect(stats.find((s) => s.deployment === "refused")?.cooldowns).toBeGreaterThanOrEqual(1)
      expect(stats.find((s) => s.deployment === "slow")?.succeeded).toBeGreaterThan(0)
    }), 30_000)

  it.scopedLive("a routed stream its consumer fails (with null, a string or a tagged error) ends with that failure alone, counted per deployment by its tag or as other", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({})
      const name = `consumer-${Date.now()}`
      const chat = Context.get(yield* Layer.build(ChatClient.layerRouter({ deployments: [{ name, baseUrl: mock.url, models: ["gpt-4.1-mini"] }] })), ChatClient.ChatClient)
      const before = yield* Metrics.snapshot
      for (const failure of [null, "stop", { _tag: "Stop" }] as const) {
        const viaEach = yield* Effect.exit(chat.streamForEach({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "hi" }] }, () => Effect.fail(failure)))
        expect(viaEach).toEqual(Exit.fail(failure))
      }
      const viaStream = yield* Effect.exit(Stream.runForEach(chat.stream({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "hi" }] }), () => Effect.fail(null)))
      expect(viaStream).toEqual(Exit.fail(null))
      const after = yield* Metrics.snapshot
      const count = (entries: ReadonlyArray<Metrics.SnapshotEntry>, outcome: string) =>
        entries.filter((e) => e.name === "shepherd_deployment_requests_total" && e.labels["deployment"] === name && e.labels["outcome"] === outcome)
          .reduce((sum, e) => sum + (e.value.type === "counter" ? e.value.count : 0), 0)
      expect(count(after, "other") - count(before, "other")).toBe(3)
      expect(count(after, "Stop") - count(before, "Stop")).toBe(1)
    }))
})

describe("ChatClient.layerRouter options", () => {
  const base = { name: "a", baseUrl: "http://127.0.0.1:9/v1", models: ["m"] }
  const pathOf = (options: Router.Options) =>
    Effect.map(Effect.flip(Effect.scoped(Layer.build(ChatClient.layerRouter(options)))), (error) => ("path" in error ? error.path : error._tag))

  it.effect("a mistake fails the build with a ConfigError naming its path", () =>
    Effect.gen(function* () {
      expect(yield* pathOf({ deployments: [] })).toEqual(["deployments"])
      expect(yield* pathOf({ deployments: [base, { ...base, name: "b", limits: { rpm: 0 } }] })).toEqual(["deployments", "1", "limits", "rpm"])
      expect(yield* pathOf({ deployments: [base, base] })).toEqual(["deployments", "1", "name"])
      expect(yield* pathOf({ deployments: [{ ...base, models: [] }] })).toEqual(["deployments", "0", "models"])
      expect(yield* pathOf({ deployments: [{ ...base, baseUrl: "ftp://x" }] })).toEqual(["deployments", "0", "baseUrl"])
      expect(yield* pathOf({ deployments: [base], client: { timeout: -1 } })).toEqual(["client", "timeout"])
      expect(yield* pathOf({ deployments: [base], fallbacks: { m: ["nobody-serves-this"] } })).toEqual(["fallbacks", "m", "0"])
      expect(yield* pathOf({ deployments: [base], fallbackOn: ["sometimes" as Router.FallbackCause] })).toEqual(["fallbackOn", "0"])
      expect(yield* pathOf({ deployments: [base], cooldown: { failures: 0 } })).toEqual(["cooldown", "failures"])
    }))

  it.effect("a key is never in a message", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.scoped(Layer.build(ChatClient.layerRouter({ deployments: [{ ...base, apiKey: Redacted.make("sk-secret\nline") }] }))))
      expect(error.message).not.toContain("sk-secret")
      expect("path" in error && error.path).toEqual(["deployments", "0", "apiKey"])
    }))
})
