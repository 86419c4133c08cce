/**
 * bench/routing: three deployments (MockServers enforcing 300, 600 and 1,200 RPM as token buckets, as
 * OpenAI does) and 3,000 requests, sent three ways in the same run: `ChatClient.layerRouter` (each
 * request where it starts soonest), round-robin and random choice over three `ChatClient.layer`
 * clients with the same limits (what simple proxies do). Prints, for each, the time taken, the rate
 * reached against the 2,100 RPM the three allow together, the 429s the servers sent, and the requests
 * each deployment answered.
 *
 *   npm run build && node dist/bench/routing.js [--requests 3000] [--concurrency 256] [--latency 50] [--scale 1]
 *
 * `--scale k` shortens the minute the limits count over to 60/k seconds on the servers and the
 * clients alike (the limits' test-only `window`), so that a run takes k times less; rates are
 * reported per (scaled) minute. The adaptive pace is then off for all three (it reads the servers'
 * headers as per-minute limits).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as ChatClient from "../src/ChatClient.js"
import type * as ChatSchema from "../src/ChatSchema.js"
import type * as RateLimit from "../src/RateLimit.js"
import * as MockServer from "../src/testing/MockServer.js"
import { flags } from "./lib.js"

const args = flags(process.argv.slice(2))
const requests = Number(args.get("requests") ?? 3000)
const concurrency = Number(args.get("concurrency") ?? 256)
const latency = Number(args.get("latency") ?? 50)
const scale = Number(args.get("scale") ?? 1)
const windowMillis = Math.round(60_000 / scale)
const limits = [300, 600, 1200] as const
const total = limits.reduce((a, b) => a + b, 0)
// Requests reach the server a little after they start: the margin keeps the two windows apart.
const margin = Math.max(100, Math.round(windowMillis / 60))

const request = (i: number): ChatSchema.ChatCompletionRequest => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `request ${i}` }], max_tokens: 16 })

interface Row {
  readonly name: string
  readonly seconds: number
  readonly rpm: number
  readonly rateLimited: number
  readonly answered: ReadonlyArray<number>
  readonly failed: number
}

const run = (name: string, choose: (clients: ReadonlyArray<ChatClient.Service>, i: number) => Effect.Effect<ChatClient.Service>, routed: boolean) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const servers = yield* Effect.forEach(limits, (rpm) => Scope.extend(MockServer.make({ rpm, window: `${windowMillis} millis`, latency: `${latency} millis` }), scope))
    // The adaptive pace reads the servers' x-ratelimit-* headers as per-minute limits: with the minute
// scaled down it would hold every client to a tenth of its window, so it is off for all three then.
const clientLimits = (rpm: number): RateLimit.Options => ({ rpm, window: windowMillis, windowMargin: margin, adaptive: scale === 1 })
    const clients = routed
      ? [Context.get(yield* Scope.extend(Layer.build(ChatClient.layerRouter({
        deployments: servers.map((s, i) => ({ name: `rpm-${limits[i]}`, baseUrl: s.url, models: ["gpt-4.1-mini"], limits: clientLimits(limits[i]!) })),
        client: { tracing: false, retry: { totalTimeout: "30 minutes" } }
      })), scope), ChatClient.ChatClient)]
      : yield* Effect.forEach(servers, (s, i) =>
        Effect.map(Scope.extend(Layer.build(ChatClient.layer({ baseUrl: s.url, limits: clientLimits(limits[i]!), tracing: false, retry: { totalTimeout: "30 minutes" } })), scope), (c) => Context.get(c, ChatClient.ChatClient)))
    const started = Date.now()
    const results = yield* Effect.forEach(
      Array.from({ length: requests }, (_, i) => i),
      (i) => Effect.either(Effect.flatMap(choose(clients, i), (client) => client.create(request(i)))),
      { concurrency }
    )
    const seconds = (Date.now() - started) / 1000
    const stats = yield* Effect.forEach(servers, (s) => s.stats)
    yield* Scope.close(scope, Exit.void)
    return {
      name,
      seconds,
      rpm: requests / (seconds * 1000 / windowMillis),
      rateLimited: stats.reduce((sum, s) => sum + s.rateLimited, 0),
      answered: stats.map((s) => s.byStatus["200"] ?? 0),
      failed: results.filter((r) => r._tag === "Left").length
    } satisfies Row
  })

const program = Effect.gen(function* () {
  const rows: Array<Row> = []
  rows.push(yield* run("shepherd router (soonest start)", (clients) => Effect.succeed(clients[0]!), true))
  rows.push(yield* run("round-robin", (clients, i) => Effect.succeed(clients[i % clients.length]!), false))
  rows.push(yield* run("random choice", (clients) => Effect.map(Random.nextIntBetween(0, clients.length), (i) => clients[i]!), false))
  console.log(`bench/routing: ${requests} requests, concurrency ${concurrency}, latency ${latency} ms, deployments at ${limits.join(", ")} RPM (${total} together)` +
    (scale === 1 ? "" : `, minute scaled to ${windowMillis / 1000} s (--scale ${scale})`))
  console.log("| choice | time | rate (per minute) | of 2,100 RPM | 429s | failed | answered by 300 / 600 / 1,200 RPM |")
  console.log("| --- | --- | --- | --- | --- | --- | --- |")
  for (const r of rows) {
    const minutes = r.seconds * scale / 60
    console.log(`| ${r.name} | ${r.seconds.toFixed(1)} s (${minutes.toFixed(2)} scaled min) | ${Math.round(r.rpm)} | ${Math.round((100 * r.rpm) / total)}% | ${r.rateLimited} | ${r.failed} | ${r.answered.join(" / ")} |`)
  }
})

Effect.runPromise(Effect.withRandom(program, Random.make(7))).catch((error) => {
  console.error(error)
  process.exit(1)
})
