/**
 * `shepherd demo` (`npm start`): the whole story against the embedded MockServer (or a real provider
 * when OPENAI_BASE_URL is set): sequential against concurrent throughput, then 50 documents through
 * `Rag.analyzeDocuments` with progress and a cost summary, then one `Rag.answer`.
 * @internal
 */
import * as Command from "@effect/cli/Command"
import { SingleBar } from "cli-progress"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as ChatClient from "../ChatClient.js"
import type * as ChatSchema from "../ChatSchema.js"
import * as Pricing from "../Pricing.js"
import * as Rag from "../Rag.js"
import * as MockServer from "../testing/MockServer.js"

interface Row {
  readonly concurrency: number
  readonly requests: number
  readonly ok: number
  readonly failures: Record<string, number>
  /** Attempts beyond the first, over all requests of the row. */
  readonly retries: number
  readonly seconds: number
  /** Mean time of a call, retries and waits included, in milliseconds. */
  readonly meanLatencyMillis: number
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
    let latencyTotal = 0
    const start = yield* Clock.currentTimeMillis
    yield* Effect.forEach(
      Array.from({ length: requests }, (_, i) => i),
      (i) =>
        Effect.flatMap(Clock.currentTimeMillis, (began) =>
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
            }),
            Effect.zipRight(Effect.map(Clock.currentTimeMillis, (ended) => { latencyTotal += ended - began }))
          )),
      { concurrency, discard: true }
    )
    const end = yield* Clock.currentTimeMillis
    return { concurrency, requests, ok, failures, retries, seconds: (end - start) / 1000, meanLatencyMillis: latencyTotal / requests } satisfies Row
  })

const pad = (s: string, n: number) => s.padStart(n)

const printTable = (rows: ReadonlyArray<Row>) =>
  Effect.gen(function* () {
    const sequential = rows[0]!.requests / rows[0]!.seconds
    yield* Console.log(
      `${pad("concurrency", 11)} ${pad("requests", 8)} ${pad("ok", 6)} ${pad("failed", 6)} ${pad("retries", 7)} ${pad("req/s", 8)} ${pad("mean ms", 8)} ${pad("speed-up", 8)}`
    )
    for (const row of rows) {
      const rate = row.requests / row.seconds
      yield* Console.log(
        `${pad(row.concurrency === 1 ? "sequential" : String(row.concurrency), 11)} ${pad(String(row.requests), 8)} ${pad(String(row.ok), 6)} ` +
          `${pad(String(row.requests - row.ok), 6)} ${pad(String(row.retries), 7)} ${pad(rate.toFixed(1), 8)} ${pad(row.meanLatencyMillis.toFixed(0), 8)} ` +
          `${pad(`${(rate / sequential).toFixed(1)}x`, 8)}`
      )
    }
    const failures: Record<string, number> = {}
    for (const row of rows) for (const [tag, n] of Object.entries(row.failures)) failures[tag] = (failures[tag] ?? 0) + n
    const retries = rows.reduce((sum, row) => sum + row.retries, 0)
    yield* Console.log(
      `\n${retries} retries absorbed the 429s and 5xx (a 429 pauses the whole client for the delay the server asked).` +
        (Object.keys(failures).length === 0
          ? ""
          : `\nfailed, each a typed ChatError: ${Object.entries(failures).map(([tag, n]) => `${tag} ${n}`).join(", ")}` +
            " (a 2xx body that is not a completion is final: retrying would pay for the same answer again)")
    )
  })

const TOPICS = [
  ["Refunds", "Refunds for damaged items are paid within five working days of the return reaching our warehouse. Refunds go back to the original payment method."],
  ["Shipping", "Standard shipping takes three to five working days; express shipping arrives the next working day when ordered before 2 pm."],
  ["Returns", "Items can be returned within 30 days in their original packaging. Print the prepaid label from your account page."],
  ["Warranty", "Electronics carry a two-year warranty covering manufacturing defects. Accidental damage is not covered."],
  ["Gift cards", "Gift cards never expire and can be combined with one discount code per order."],
  ["Order tracking", "Every order has a tracking link in the confirmation email; tracking starts once the parcel leaves the warehouse."],
  ["Payment", "We accept cards, bank transfers and two buy-now-pay-later providers; payments are captured when the order ships."],
  ["Exchanges", "Exchanges for a different size are free; the new item ships when the returned one is scanned at the depot."],
  ["Damaged parcels", "Photograph a damaged parcel before opening it and report it within 48 hours so the carrier claim can be filed."],
  ["Loyalty points", "Loyalty points are earned on every order, one point per euro, and expire after 24 months without a purchase."]
] as const

/** 50 knowledge-base articles of an online shop: 10 topics, 5 regional variants each. */
export const demoDocuments: ReadonlyArray<Rag.Document> = Array.from({ length: 50 }, (_, i) => {
  const [title, body] = TOPICS[i % TOPICS.length]!
  const region = ["EU", "UK", "US", "CA", "AU"][Math.floor(i / TOPICS.length)]!
  return {
    docId: `kb-${String(i + 1).padStart(2, "0")}`,
    content: `${title} (${region} store). ${body} Questions about ${title.toLowerCase()} in the ${region} store go to the support team, ` +
      `who answer within one working day. Last reviewed in article ${i + 1} of the help centre.`
  }
})

/** Documents through `Rag.analyze` with a progress bar (or a line per 10 documents without a terminal). */
const analyzeWithProgress = (docs: ReadonlyArray<Rag.Document>, options: Rag.AnalyzeOptions) =>
  Effect.gen(function* () {
    const tty = process.stderr.isTTY === true
    const bar = tty ? new SingleBar({ stream: process.stderr, format: "analysing {bar} {value}/{total} documents | {errors} failed", hideCursor: true }) : undefined
    bar?.start(docs.length, 0, { errors: 0 })
    let done = 0
    let errors = 0
    const analyses = yield* Rag.analyze(docs, options).pipe(
      Stream.tap((analysis) =>
        Effect.gen(function* () {
          done++
          if (analysis.error !== undefined) errors++
          bar?.update(done, { errors })
          if (!tty && (done % 10 === 0 || done === docs.length)) yield* Console.log(`  analysed ${done}/${docs.length} documents (${errors} failed)`)
        })),
      Stream.runCollect
    )
    bar?.stop()
    const order = new Map(docs.map((d, i) => [d.docId, i]))
    return [...analyses].sort((a, b) => order.get(a.docId)! - order.get(b.docId)!)
  })

const usd = (micro: number) => Pricing.format(micro)

const printCosts = (analyses: ReadonlyArray<Rag.Analysis>, model: string, seconds: number) =>
  Effect.gen(function* () {
    const failed = analyses.filter((a) => a.error !== undefined)
    const prompt = analyses.reduce((s, a) => s + a.usage.promptTokens, 0)
    const completion = analyses.reduce((s, a) => s + a.usage.completionTokens, 0)
    const reasks = analyses.reduce((s, a) => s + Math.max(0, a.attempts - 1), 0)
    const recovered: Record<string, number> = {}
    for (const a of analyses) if (a.recovery !== undefined) recovered[a.recovery] = (recovered[a.recovery] ?? 0) + 1
    const priced = analyses.filter((a) => Option.isSome(a.costMicroUsd))
    const cost = priced.reduce((s, a) => s + Option.getOrElse(a.costMicroUsd, () => 0), 0)
    yield* Console.log(
      `\n${analyses.length - failed.length} of ${analyses.length} documents analysed in ${seconds.toFixed(1)} s` +
        (failed.length === 0 ? "" : `; ${failed.length} failed, each with its typed error (${[...new Set(failed.map((a) => a.error!._tag))].join(", ")})`) +
        `; ${reasks} answers re-asked after they did not decode.` +
        `\nhow the JSON was recovered: ${Object.entries(recovered).map(([how, n]) => `${how} ${n}`).join(", ")}` +
        (recovered["strict"] === analyses.length ? "" : " (repaired: the answer had prose around it or trailing commas, fixed without asking again)")
    )
    const price = Pricing.priceOf(model)
    yield* Console.log(
      `cost: ${prompt} prompt + ${completion} completion tokens = ${usd(cost)}` +
        (analyses.length > 0 ? ` (${usd(Math.round(cost / analyses.length))} per document)` : "") +
        Option.match(price, {
          onNone: () => `; ${model} has no known price, so its cost is not counted`,
          onSome: (p) => `\n      priced as ${model}: $${p.input}/$${p.output} per 1M input/output tokens (${p.source}, ${p.asOf})`
        })
    )
  })

interface Plan {
  readonly rows: ReadonlyArray<readonly [number, number]>
  readonly documents: number
}

const plan = (real: boolean): Plan =>
  real ? { rows: [[1, 5], [10, 20], [20, 40], [50, 50]], documents: 5 } : { rows: [[1, 20], [10, 200], [20, 400], [50, 1000]], documents: 50 }

export const demo = Effect.gen(function* () {
  const baseUrl = process.env["OPENAI_BASE_URL"]
  const real = baseUrl !== undefined && baseUrl.trim() !== ""
  const model = process.env["SHEPHERD_MODEL"] ?? "gpt-4.1-mini"
  let clientLayer: Layer.Layer<ChatClient.ChatClient, unknown>
  if (real) {
    yield* Console.log(
      `Shepherd demo against ${baseUrl} with model ${model} (a small run: it sends about 120 requests and analyses 5 documents;\n` +
        `unset OPENAI_BASE_URL to run the full demo against the embedded mock server instead)\n`
    )
    clientLayer = ChatClient.layerConfig()
  } else {
    const server = yield* MockServer.make({
      latency: { uniform: ["50 millis", "80 millis"] },
      faultRate: 0.02,
      faults: [{ type: "rate_limit", retryAfterMillis: 200 }, { type: "server_error", status: 502 }, { type: "server_error", status: 503 }, { type: "malformed_json" }],
      // Model answers that are "almost JSON": in prose, with trailing commas (Structured recovers them).
      jsonContent: { prose: true, trailingComma: true, onlyWhenAsked: true }
    })
    yield* Console.log(
      `Shepherd demo against the embedded mock server at ${server.url}\n` +
        `(50-80 ms per answer; 2% of answers are a 429 with retry-after, a 502/503 or a malformed body; JSON answers come in prose with trailing commas.\n` +
        ` Set OPENAI_BASE_URL and OPENAI_API_KEY to run against a real provider.)\n`
    )
    clientLayer = ChatClient.layer({ baseUrl: server.url, retry: { initialDelay: "50 millis" } })
  }
  const { rows: shape, documents } = plan(real)
  yield* Effect.gen(function* () {
    // 1. The seed's question: the same calls one at a time, then concurrently.
    const rows: Array<Row> = []
    for (const [concurrency, requests] of shape) rows.push(yield* runRow(concurrency, requests, model))
    yield* Console.log("1. Sequential calls against concurrent ones, same client:\n")
    yield* printTable(rows)

    // 2. Documents analysed into typed summaries, concurrently.
    const docs = demoDocuments.slice(0, documents)
    yield* Console.log(`\n2. ${docs.length} help-centre articles through Rag.analyzeDocuments (10 at a time), each into { summary, keyPoints }:\n`)
    const started = yield* Clock.currentTimeMillis
    const analyses = yield* analyzeWithProgress(docs, { model, concurrency: 10, maxTokens: 300 })
    const ended = yield* Clock.currentTimeMillis
    yield* printCosts(analyses, model, (ended - started) / 1000)
    const example = analyses.find((a) => a.error === undefined)
    if (example !== undefined) {
      yield* Console.log(`\nfor example ${example.docId}:\n  summary: ${example.summary}\n  key points: ${example.keyPoints.map((k) => `"${k}"`).join(", ")}`)
    }

    // 3. One question answered from the best-matching documents.
    const question = "How long do refunds for damaged items take?"
    yield* Console.log(`\n3. Rag.answer("${question}") from the 5 best-matching articles:\n`)
    const answer = yield* Effect.either(Rag.answer(question, docs, { model, topK: 5, maxTokens: 200 }))
    if (answer._tag === "Left") {
      yield* Console.log(`  no answer: ${answer.left.message}`)
    } else {
      const a = answer.right
      yield* Console.log(`  sources: ${a.sources.map((s) => `${s.docId} (${s.score.toFixed(2)})`).join(", ")}`)
      yield* Console.log(`  answer: ${a.answer}`)
      yield* Console.log(
        `  ${a.usage?.total_tokens ?? "?"} tokens, ${Option.match(a.costMicroUsd, { onNone: () => "cost unknown", onSome: usd })}`
      )
    }
  }).pipe(Effect.provide(clientLayer))
}).pipe(Effect.scoped)

export const demoCommand = Command.make("demo", {}, () => demo).pipe(
  Command.withDescription("The whole story: concurrent throughput, 50 documents analysed with costs, one RAG answer (embedded mock server unless OPENAI_BASE_URL is set)")
)
