/**
 * `shepherd demo`, part 4 (embedded mock server only): one client over three deployments, routed by
 * capacity: two mock servers with their own limits and one that refuses connections.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ChatClient from "../ChatClient.js"
import * as Router from "../Router.js"
import * as MockServer from "../testing/MockServer.js"

/**
 * The limits of the two servers, over a window of 2 s instead of a minute (so the demo stays short;
 * the adaptive pace, which reads the servers' headers as per-minute limits, is off for them). The
 * client's windows count 1 s longer than the servers' (`windowMargin`): a request admitted at the end
 * of a client window reaches a server that counts exactly a little later.
 */
const WINDOW = "2 seconds"
const SMALL_RPM = 10
const LARGE_RPM = 30
const REQUESTS = 80

/** A table row for one deployment. */
const row = (s: Router.DeploymentStats) =>
  `  ${s.deployment.padEnd(10)} ${String(s.requests).padStart(8)} ${String(s.succeeded).padStart(10)} ${String(s.rateLimited).padStart(5)} ${String(s.cooldowns).padStart(10)}`

/**
 * Sends `REQUESTS` requests at once through a router over `small`, `large` and `down`, and prints who
 * answered, the servers' own count of 429s, and each deployment's row.
 *
 * @since 0.2.0
 * @category demo
 */
export const demoRouting = (model: string) =>
  Effect.gen(function* () {
    const small = yield* MockServer.make({ rpm: SMALL_RPM, window: WINDOW, latency: "20 millis" })
    const large = yield* MockServer.make({ rpm: LARGE_RPM, window: WINDOW, latency: "20 millis" })
    yield* Console.log(
      `\n4. One client over three deployments (ChatClient.layerRouter): "small" (${SMALL_RPM} requests per 2 s), "large" (${LARGE_RPM} per 2 s),\n` +
        `and "down", which refuses connections. ${REQUESTS} requests at once:\n`
    )
    const router = ChatClient.layerRouter({
      deployments: [
        { name: "small", baseUrl: small.url, models: [model], limits: { rpm: SMALL_RPM, window: WINDOW, windowMargin: "1 second", adaptive: false } },
        { name: "large", baseUrl: large.url, models: [model], limits: { rpm: LARGE_RPM, window: WINDOW, windowMargin: "1 second", adaptive: false } },
        { name: "down", baseUrl: "http://127.0.0.1:1/v1", models: [model] }
      ]
    })
    const started = yield* Clock.currentTimeMillis
    const answers = yield* Effect.gen(function* () {
      const chat = yield* ChatClient.ChatClient
      return yield* Effect.forEach(
        Array.from({ length: REQUESTS }, (_, i) => i),
        (i) => Effect.either(chat.createWithMetadata({ model, messages: [{ role: "user", content: `routed question ${i}` }], max_tokens: 20 })),
        { concurrency: REQUESTS }
      )
    }).pipe(
      Effect.provide(router),
      // The router's warning about "down" would go to stderr; the table below tells it.
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    const answered = new Map<string, number>()
    for (const answer of answers) {
      if (answer._tag === "Right" && answer.right.route !== undefined) answered.set(answer.right.route.deployment, (answered.get(answer.right.route.deployment) ?? 0) + 1)
    }
    const failed = answers.filter((a) => a._tag === "Left").length
    const refused = (yield* small.stats).rateLimited + (yield* large.stats).rateLimited
    yield* Console.log(`  deployment requests succeeded  429s  cooldowns`)
    for (const s of yield* Router.stats) yield* Console.log(row(s))
    yield* Console.log(
      `\n  ${REQUESTS - failed} of ${REQUESTS} answered in ${seconds.toFixed(1)} s (${[...answered].map(([name, n]) => `${name} ${n}`).join(", ")}); ` +
        `${refused} 429s counted by the two servers; "down" was taken out after it refused connections (one probe decides when it comes back).`
    )
  })
