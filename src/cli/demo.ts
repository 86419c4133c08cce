/**
 * `shepherd demo` (`npm start`): the throughput story, sequential against concurrent, against the
 * embedded MockServer, or against a real provider when OPENAI_BASE_URL is set.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ChatClient from "../ChatClient.js"
import type * as ChatSchema from "../ChatSchema.js"
import * as MockServer from "../testing/MockServer.js"

interface Row {
  readonly concurrency: number
  readonly requests: number
  readonly ok: number
  readonly failures: Record<string, number>
  /** Attempts beyond the first, over all requests of the row. */
  readonly retries: number
  readonly seconds: number
}

const request = (i: number, model: string): ChatSchema.ChatCompletionRequest => ({
  model,
  messages: [
    { role: "system", content: "You are a support assistant for an online shop. Answer in one sentence." },
    { role: "user", content: `Customer #${i}: where is my order ${10_000 + i}?` }
  ],
  max_tokens: 64
})

const runRow = (concurrency: number, requests: number, model: string) =>
  Effect.gen(function* () {
    const chat = yield* ChatClient.ChatClient
    const failures: Record<string, number> = {}
    let ok = 0
    let retries = 0
    const start = yield* Clock.currentTimeMillis
    yield* Effect.forEach(
      Array.from({ length: requests }, (_, i) => i),
      (i) =>
        chat.createWithMetadata(request(i, model)).pipe(
          Effect.match({
            onSuccess: (result) => {
              ok++
              retries += result.attempts - 1
            },
            onFailure: (e) => {
              failures[e._tag] = (failures[e._tag] ?? 0) + 1
              if ("attempts" in e) retries += e.attempts - 1
            }
          })
        ),
      { concurrency, discard: true }
    )
    const end = yield* Clock.currentTimeMillis
    return { concurrency, requests, ok, failures, retries, seconds: (end - start) / 1000 } satisfies Row
  })

const pad = (s: string, n: number) => s.padStart(n)

const printTable = (rows: ReadonlyArray<Row>, latencyMillis: number | undefined) =>
  Effect.gen(function* () {
    yield* Console.log(
      `${pad("concurrency", 11)} ${pad("requests", 8)} ${pad("ok", 6)} ${pad("failed", 6)} ${pad("retries", 7)} ${pad("seconds", 8)} ${pad("req/s", 8)}` +
        (latencyMillis === undefined ? "" : ` ${pad("% ideal", 8)}`)
    )
    for (const row of rows) {
      const rate = row.requests / row.seconds
      const failed = row.requests - row.ok
      const ideal = latencyMillis === undefined ? "" : ` ${pad(((100 * rate) / (row.concurrency * (1000 / latencyMillis))).toFixed(0) + "%", 8)}`
      yield* Console.log(
        `${pad(String(row.concurrency), 11)} ${pad(String(row.requests), 8)} ${pad(String(row.ok), 6)} ${pad(String(failed), 6)} ${pad(String(row.retries), 7)} ` +
          `${pad(row.seconds.toFixed(2), 8)} ${pad(rate.toFixed(0), 8)}${ideal}`
      )
    }
    const failures: Record<string, number> = {}
    for (const row of rows) for (const [tag, n] of Object.entries(row.failures)) failures[tag] = (failures[tag] ?? 0) + n
    const retries = rows.reduce((sum, row) => sum + row.retries, 0)
    yield* Console.log(
      `\n${retries} retries absorbed the 429s and 502s (a 429 pauses the whole client for the delay the server asked).` +
        (Object.keys(failures).length === 0
          ? ""
          : `\nfailed, each a typed ChatError: ${Object.entries(failures).map(([tag, n]) => `${tag} ${n}`).join(", ")}` +
            " (a 2xx body that is not a completion is final: retrying would pay for the same answer again)")
    )
  })

const plan = (real: boolean): ReadonlyArray<readonly [number, number]> =>
  real ? [[1, 5], [10, 20], [20, 40]] : [[1, 40], [10, 400], [50, 2000], [200, 4000]]

export const demo = Effect.gen(function* () {
  const baseUrl = process.env["OPENAI_BASE_URL"]
  const real = baseUrl !== undefined && baseUrl.trim() !== ""
  const model = process.env["SHEPHERD_MODEL"] ?? "gpt-4.1-mini"
  const latencyMillis = 50
  let clientLayer: Layer.Layer<ChatClient.ChatClient, unknown>
  if (real) {
    yield* Console.log(`Shepherd demo against ${baseUrl} (model ${model})\n`)
    clientLayer = ChatClient.layerConfig()
  } else {
    const server = yield* MockServer.make({
      latency: `${latencyMillis} millis`,
      faultRate: 0.01,
      faults: [{ type: "rate_limit", retryAfterMillis: 100 }, { type: "server_error", status: 502 }, { type: "malformed_json" }]
    })
    yield* Console.log(
      `Shepherd demo against the embedded mock server at ${server.url}\n` +
        `(${latencyMillis} ms per answer; 1% of answers are a 429, a 502 or a malformed body.` +
        ` Set OPENAI_BASE_URL and OPENAI_API_KEY to run against a real provider.)\n`
    )
    clientLayer = ChatClient.layer({ baseUrl: server.url })
  }
  const rows: Array<Row> = []
  yield* Effect.gen(function* () {
    for (const [concurrency, requests] of plan(real)) rows.push(yield* runRow(concurrency, requests, model))
  }).pipe(Effect.provide(clientLayer))
  yield* Console.log("Sequential calls against concurrent ones, same client:\n")
  yield* printTable(rows, real ? undefined : latencyMillis)
  const first = rows[0]!
  const last = rows[rows.length - 1]!
  yield* Console.log(
    `\nconcurrency ${last.concurrency} answered ${(last.requests / last.seconds / (first.requests / first.seconds)).toFixed(0)}x` +
      ` as many requests per second as one call at a time.`
  )
}).pipe(Effect.scoped)

export const demoCommand = Command.make("demo", {}, () => demo).pipe(
  Command.withDescription("Show sequential against concurrent throughput (the embedded mock server unless OPENAI_BASE_URL is set)")
)
