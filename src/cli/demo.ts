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
import type * as ChatError from "../ChatError.js"
import type * as ChatSchema from "../ChatSchema.js"
import type * as Json from "../Json.js"
import * as Pricing from "../Pricing.js"
import * as Rag from "../Rag.js"
import * as MockServer from "../testing/MockServer.js"
import { demoDocuments } from "./demoDocuments.js"
import { demoRouting } from "./demoRouting.js"

/** Failures of one kind: how many, and the first of them (for its details). */
interface FailureGroup {
  count: number
  readonly example: ChatError.ChatError
}

interface Row {
  readonly concurrency: number
  readonly requests: number
  readonly ok: number
  readonly failures: Map<string, FailureGroup>
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
    const failures = new Map<string, FailureGroup>()
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
                const group = failures.get(failureKind(e))
                if (group === undefined) failures.set(failureKind(e), { count: 1, example: e })
                else group.count++
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
    const failures = new Map<string, FailureGroup>()
    for (const row of rows) {
      for (const [kind, group] of row.failures) {
        const seen = failures.get(kind)
        if (seen === undefined) failures.set(kind, { ...group })
        else seen.count += group.count
      }
    }
    const retries = rows.reduce((sum, row) => sum + row.retries, 0)
    const failed = [...failures.values()].reduce((sum, g) => sum + g.count, 0)
    yield* Console.log(
      "\n" + (retries === 0
        ? "No request needed a retry."
        : `${retries} retries absorbed the 429s, 5xx and dropped connections (a 429 pauses the whole client for the delay the server asked).`)
    )
    if (failed > 0) {
      yield* Console.log(`${failed} ${failed === 1 ? "request" : "requests"} failed, each with a typed ChatError:`)
      for (const [kind, group] of [...failures].sort(([, a], [, b]) => b.count - a.count)) {
        yield* Console.log(`  ${kind} x${group.count}: ${explainFailure(group.example)}`)
      }
    }
  })

/** The kind a failure is counted under: its tag, with the status, phase or code that tells them apart. */
export const failureKind = (e: ChatError.ChatError): string => {
  switch (e._tag) {
    case "ApiError":
      return `ApiError ${e.status}`
    case "TimeoutError":
      return `TimeoutError (${e.phase})`
    case "TransportError":
      return e.code === undefined ? "TransportError" : `TransportError (${e.code})`
    default:
      return e._tag
  }
}

const quote = (text: string) => {
  const line = text.replace(/\s+/g, " ").trim()
  return `"${line.length > 100 ? `${line.slice(0, 99)}…` : line}"`
}

/** Why a request ended with this error, and why it was not (or no longer) retried, in one line. */
export const explainFailure = (e: ChatError.ChatError): string => {
  const after = "attempts" in e && e.attempts > 1 ? ` after ${e.attempts} attempts` : ""
  switch (e._tag) {
    case "ApiError":
      if (e.status === 401 || e.status === 403) return `the server refused the key (${quote(e.detail)}); final: check OPENAI_API_KEY`
      if (e.status >= 500) return `the server kept failing${after} (${quote(e.detail)}); the retries ran out`
      return `the server refused the request itself (${quote(e.detail)}); final: the same request would be refused again`
    case "ResponseDecodeError":
      return `a ${e.status} answer whose body is not a chat completion (${quote(e.detail)}); final: retrying would pay for the same answer again`
    case "RateLimitError":
      return `still rate limited${after}; the retries ran out`
    case "TimeoutError":
      return `no answer within the ${e.phase} deadline (${e.timeoutMillis} ms)${after}`
    case "TransportError":
      return `the connection failed${after} (${quote(e.detail)})`
    case "BudgetExceededError":
      return "not sent: it could have taken the spend past the budget"
    case "LimiterUnavailableError":
      return "not sent: the shared rate limits could not be reached"
  }
}

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

/** An article's title: the first line of its content. */
const titleOf = (docId: string) => demoDocuments.find((d) => d.docId === docId)?.content.split("\n")[0] ?? docId

/** How each kind of JSON recovery reads in a sentence. */
const RECOVERY: Record<Json.Recovery, string> = {
  strict: "clean",
  fenced: "in a ```json fence",
  extracted: "inside prose",
  repaired: "repaired (prose around it, trailing commas)",
  truncated: "cut off and closed"
}

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
    const asked = reasks === 0 ? "no answer had to be asked for again" : `${reasks} ${reasks === 1 ? "answer was" : "answers were"} asked for again because ${reasks === 1 ? "it" : "they"} did not decode`
    yield* Console.log(
      `\n${analyses.length - failed.length} of ${analyses.length} documents analysed in ${seconds.toFixed(1)} s; ${asked}.` +
        (failed.length === 0 ? "" : `\n${failed.length} failed, each with its typed error: ${[...new Set(failed.map((a) => a.error!._tag))].join(", ")}.`)
    )
    const counted = Object.entries(recovered).sort(([, a], [, b]) => b - a)
    if (counted.length > 0) {
      yield* Console.log(
        `The answers' JSON: ${counted.map(([how, n]) => `${n} ${RECOVERY[how as Json.Recovery] ?? how}`).join(", ")}` +
          (recovered["strict"] === analyses.length - failed.length ? "." : ". Shepherd read each one without asking the model again.")
      )
    }
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
    // 1. The same calls one at a time, then concurrently.
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
      yield* Console.log(
        `\nFor example, ${example.docId} "${titleOf(example.docId)}":\n  summary: ${example.summary}\n  key points:\n` +
          example.keyPoints.map((k) => `    - ${k}`).join("\n")
      )
    }

    // 3. One question answered from the best-matching articles, among all 50 (ranking calls no model).
    const question = "How long do refunds for damaged items take in the UK store?"
    yield* Console.log(
      `\n3. A customer asks: "${question}"\n` +
        `Rag.answer ranks the ${demoDocuments.length} articles against it (BM25, no model call) and sends the 5 best to the model:\n`
    )
    const answer = yield* Effect.either(Rag.answer(question, demoDocuments, { model, topK: 5, maxTokens: 200 }))
    if (answer._tag === "Left") {
      yield* Console.log(`  no answer: ${answer.left.message}`)
    } else {
      const a = answer.right
      for (const source of a.sources) yield* Console.log(`  ${source.docId}  score ${source.score.toFixed(2).padStart(5)}  ${titleOf(source.docId)}`)
      yield* Console.log(`\n  answer: ${a.answer}`)
      yield* Console.log(
        `  (${a.usage?.total_tokens ?? "?"} tokens, ${Option.match(a.costMicroUsd, { onNone: () => "cost unknown", onSome: usd })})`
      )
    }
  }).pipe(Effect.provide(clientLayer))
  if (!real) yield* demoRouting(model)
}).pipe(Effect.scoped)

export const demoCommand = Command.make("demo", {}, () => demo).pipe(
  Command.withDescription("The whole story: concurrent throughput, 50 documents analysed with costs, one RAG answer, routing over three deployments (embedded mock server unless OPENAI_BASE_URL is set)")
)
