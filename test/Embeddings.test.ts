/**
 * Embeddings.embedMany and Embeddings.stream over a stub HttpClient (TestClock): packing under the
 * limits, input order, failure isolation, bounded read-ahead, and the client's budget and limiter.
 */
import { describe, expect, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Budget, ChatClient, Embeddings } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import * as Tokens from "../src/internal/tokens.js"
import { MockServer } from "../src/testing/index.js"

interface Sent {
  readonly input: ReadonlyArray<string>
  readonly body: Record<string, unknown>
  readonly atMillis: number
}

type Answer = (input: ReadonlyArray<string>, i: number) => { readonly status: number; readonly body: unknown }

/** The vector the stub gives a text "t<i>": [i, i + 0.5]. */
const vectorOf = (text: string) => [parseInt(text.slice(1)), parseInt(text.slice(1)) + 0.5]

/** Answers every input with its vector, the data in reverse order (placement must follow `index`). */
const answerAll: Answer = (input) => ({
  status: 200,
  body: {
    object: "list",
    model: "text-embedding-3-small",
    data: input.map((text, index) => ({ object: "embedding", index, embedding: vectorOf(text) })).reverse(),
    usage: { prompt_tokens: input.length, total_tokens: input.length }
  }
})

/** A stub HttpClient that records each request body and answers with `answer`; counts requests in flight. */
const stub = (answer: Answer = answerAll) => {
  const sent: Array<Sent> = []
  const inFlight = { now: 0, max: 0 }
  const client = HttpClient.make((request) =>
    Effect.gen(function* () {
      const body = JSON.parse(request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : "{}") as Record<string, unknown>
      const input = body["input"] as ReadonlyArray<string>
      const i = sent.length
      sent.push({ input, body, atMillis: yield* Clock.currentTimeMillis })
      inFlight.now++
      inFlight.max = Math.max(inFlight.max, inFlight.now)
      yield* Effect.yieldNow()
      inFlight.now--
      const { body: reply, status } = answer(input, i)
      return HttpClientResponse.fromWeb(request, new Response(JSON.stringify(reply), { status, headers: { "content-type": "application/json" } }))
    }))
  return { sent, inFlight, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const clientOver = (s: ReturnType<typeof stub>, options: ChatClient.Overrides = {}) =>
  ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", retry: { maxRetries: 0 }, ...options }).pipe(Layer.provide(s.layer))

const texts = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `t${from + i}`)
const model = "text-embedding-3-small"

describe("Embeddings.embedMany", () => {
  it.effect("one Float32Array per text in input order, in as few requests as 2,048 inputs allow, asked as base64", () =>
    Effect.gen(function* () {
      const s = stub()
      const vectors = yield* Embeddings.embedMany(texts(5000), { model, dimensions: 2 }).pipe(Effect.provide(clientOver(s)))
      expect(vectors).toHaveLength(5000)
      vectors.forEach((v, i) => {
        expect(v).toBeInstanceOf(Float32Array)
        expect(Array.from(v)).toEqual([i, i + 0.5])
      })
      expect(s.sent.map((r) => r.input.length)).toEqual([2048, 2048, 904])
      expect(s.sent[0]!.body).toMatchObject({ model, encoding_format: "base64", dimensions: 2 })
      expect(s.sent.flatMap((r) => r.input)).toEqual(texts(5000))
    }))

  it.effect("packs under maxTokensPerRequest and maxInputsPerRequest with the given token count", () =>
    Effect.gen(function* () {
      const s = stub()
      const input = ["t1", "t22", "t333", "t4", "t5", "t6", "t7777777"]
      yield* Embeddings.embedMany(input, {
        model,
        encodingFormat: "float",
        limits: { maxInputsPerRequest: 3, maxTokensPerRequest: 8 },
        countTokens: (text) => text.length
      }).pipe(Effect.provide(clientOver(s)))
      // 2 + 3 = 5, + 4 > 8; 4 + 2 + 2 = 8; three inputs, full; then 2 + 8 > 8.
      expect(s.sent.map((r) => r.input)).toEqual([["t1", "t22"], ["t333", "t4", "t5"], ["t6"], ["t7777777"]])
      expect(s.sent[0]!.body["encoding_format"]).toBe("float")
    }))

  it.effect("a text past maxTokensPerInput, and an empty one, fail alone and unsent; their neighbours are embedded", () =>
    Effect.gen(function* () {
      const s = stub()
      const long = "word ".repeat(100)
      const input = ["t0", long, "t2", "", "t4"]
      const error = yield* Effect.flip(Embeddings.embedMany(input, { model, limits: { maxTokensPerInput: 50 } }).pipe(Effect.provide(clientOver(s))))
      expect(error._tag).toBe("EmbeddingsError")
      if (error._tag !== "EmbeddingsError") return
      expect(error.failures.map((f) => [f.index, f.error._tag, "reason" in f.error ? f.error.reason : undefined])).toEqual([
        [1, "EmbeddingInputError", "too_long"],
        [3, "EmbeddingInputError", "empty"]
      ])
      expect(error.message).toContain("2 of 5 texts have no embedding; text 1: the text has more than 50 tokens")
      expect(s.sent.map((r) => r.input)).toEqual([["t0", "t2", "t4"]])
      expect(error.embeddings.map((v) => v === null ? null : Array.from(v))).toEqual([[0, 0.5], null, [2, 2.5], null, [4, 4.5]])
    }))

  it.effect("a request that fails finally fails only its own texts", () =>
    Effect.gen(function* () {
      const s = stub((input, i) =>
        i === 1 ? { status: 400, body: { error: { message: "bad input", type: "invalid_request_error", param: null, code: null } } } : answerAll(input, i))
      const error = yield* Effect.flip(
        Embeddings.embedMany(texts(10), { model, concurrency: 1, limits: { maxInputsPerRequest: 4 } }).pipe(Effect.provide(clientOver(s)))
      )
      if (error._tag !== "EmbeddingsError") throw new Error(error._tag)
      expect(error.failures.map((f) => f.index)).toEqual([4, 5, 6, 7])
      expect(error.failures.every((f) => f.error._tag === "ApiError")).toBe(true)
      expect(error.embeddings.map((v) => v === null ? null : v[0])).toEqual([0, 1, 2, 3, null, null, null, null, 8, 9])
    }))

  it.effect("an answer without one vector per text fails that request's texts with a ResponseDecodeError", () =>
    Effect.gen(function* () {
      const s = stub((input, i) => {
        const whole = answerAll(input, i)
        return i === 0 ? { ...whole, body: { ...(whole.body as object), data: (whole.body as { data: Array<unknown> }).data.slice(1) } } : whole
      })
      const error = yield* Effect.flip(Embeddings.embedMany(texts(4), { model, limits: { maxInputsPerRequest: 2 } }).pipe(Effect.provide(clientOver(s))))
      if (error._tag !== "EmbeddingsError") throw new Error(error._tag)
      expect(error.failures.map((f) => [f.index, f.error._tag])).toEqual([[0, "ResponseDecodeError"], [1, "ResponseDecodeError"]])
      expect(error.failures[0]!.error.message).toContain("1 vectors (indexes 0) for 2 inputs")
    }))

  it.effect("a text spelling a special token (<|endoftext|>) is counted as plain text and embedded", () =>
    Effect.gen(function* () {
      const s = stub()
      const text = "t7 <|endoftext|> " + "plain words ".repeat(20)
      expect(Tokens.countTokens("<|endoftext|>")).toBeGreaterThan(1)
      expect(Tokens.embeddingTokensWithin(text, 8192)).toBeGreaterThan(20)
      const vectors = yield* Embeddings.embedMany([text], { model }).pipe(Effect.provide(clientOver(s)))
      expect(Array.from(vectors[0]!)).toEqual([7, 7.5])
    }))

  it.effect("a lone string is one text, not its characters", () =>
    Effect.gen(function* () {
      const s = stub()
      expect(yield* Embeddings.embedMany("t42" as Iterable<string>, { model }).pipe(Effect.provide(clientOver(s)))).toHaveLength(1)
      expect(s.sent.map((r) => r.input)).toEqual([["t42"]])
    }))

  it("EmbeddingsError is data: it encodes (vectors as base64) and decodes back", () => {
    const error = new Embeddings.EmbeddingsError({
      failures: [{ index: 1, error: new Embeddings.EmbeddingInputError({ reason: "too_long", limit: 8192 }) }],
      embeddings: [new Float32Array([0.5, -2]), null]
    })
    const encoded = Schema.encodeSync(Embeddings.EmbeddingsError)(error)
    expect(JSON.parse(JSON.stringify(encoded)).embeddings).toEqual(["AAAAPwAAAMA=", null])
    const decoded = Schema.decodeUnknownSync(Embeddings.EmbeddingsError)(JSON.parse(JSON.stringify(encoded)))
    expect(decoded.embeddings[0]).toEqual(new Float32Array([0.5, -2]))
    expect(decoded.failures[0]!.error).toBeInstanceOf(Embeddings.EmbeddingInputError)
    expect(decoded.message).toBe(error.message)
  })

  it.effect("no texts, no requests", () =>
    Effect.gen(function* () {
      const s = stub()
      expect(yield* Embeddings.embedMany([], { model }).pipe(Effect.provide(clientOver(s)))).toEqual([])
      expect(s.sent).toHaveLength(0)
    }))

  it.effect("an invalid option is a ConfigError naming it, before anything is sent", () =>
    Effect.gen(function* () {
      const s = stub()
      const run = (options: Embeddings.Options) => Effect.flip(Embeddings.embedMany(texts(3), options).pipe(Effect.provide(clientOver(s))))
      const paths = [
        yield* run({ model, limits: { maxInputsPerRequest: 0 } }),
        yield* run({ model, limits: { maxTokensPerRequest: 1.5 } }),
        yield* run({ model: "" }),
        yield* run({ model, concurrency: -1 }),
        yield* run({ model, encodingFormat: "hex" as "float" })
      ].map((e) => (ConfigError.isConfigError(e) && e._op === "InvalidData" ? e.path.join(".") : e._tag))
      expect(paths).toEqual(["limits.maxInputsPerRequest", "limits.maxTokensPerRequest", "model", "concurrency", "encodingFormat"])
      expect(s.sent).toHaveLength(0)
    }))

  it.effect("goes through the client's limiter: rpm 2 holds the third request a minute", () =>
    Effect.gen(function* () {
      const s = stub()
      const fiber = yield* Effect.fork(
        Embeddings.embedMany(texts(3), { model, concurrency: 3, limits: { maxInputsPerRequest: 1 } }).pipe(
          Effect.provide(clientOver(s, { limits: { rpm: 2, adaptive: false } }))
        )
      )
      yield* TestClock.adjust("59 seconds")
      expect(s.sent).toHaveLength(2)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toHaveLength(3)
      expect(s.sent.map((r) => r.atMillis)).toEqual([0, 0, 60_000])
    }))

  it.effect("goes through the budget: once it refuses, the later texts fail with BudgetExceededError, unsent", () =>
    Effect.gen(function* () {
      const s = stub()
      // text-embedding-3-small: $0.02 per million tokens; the budget holds about 150 tokens.
      const layer = clientOver(s).pipe(Layer.provideMerge(Budget.layer({ maxUsd: 0.000003 })))
      const input = Array.from({ length: 6 }, (_, i) => `t${i} ` + "lorem ipsum dolor ".repeat(10))
      const error = yield* Effect.flip(
        Embeddings.embedMany(input, { model, concurrency: 1, limits: { maxInputsPerRequest: 2 } }).pipe(Effect.provide(layer))
      )
      if (error._tag !== "EmbeddingsError") throw new Error(error._tag)
      const refused = error.failures.filter((f) => f.error._tag === "BudgetExceededError").map((f) => f.index)
      expect(refused.length).toBeGreaterThan(0)
      expect(refused).toEqual(error.failures.map((f) => f.index))
      expect(s.sent.flatMap((r) => r.input).length).toBe(6 - refused.length)
      expect(error.embeddings.filter((v) => v !== null)).toHaveLength(6 - refused.length)
    }))
})

describe("Embeddings.stream", () => {
  /**
   * A ChatClient whose `embedWithMetadata` answers every input after a millisecond, counting the calls in
   * flight (the HTTP pipeline has its own tests; this one is about the stream's buffering).
   */
  const fakeClient = () => {
    const calls = { count: 0, now: 0, max: 0 }
    const embedWithMetadata = (request: ChatSchema.EmbeddingRequest) =>
      Effect.gen(function* () {
        calls.count++
        calls.now++
        calls.max = Math.max(calls.max, calls.now)
        yield* Effect.sleep("1 millis")
        calls.now--
        const input = request.input as ReadonlyArray<string>
        const embeddings = answerAll(input, 0).body as ChatSchema.EmbeddingResponse
        return { embeddings, requestId: undefined, status: 200, attempts: 1, latencyMillis: 0, headers: {} }
      })
    const service = { embedWithMetadata } as unknown as ChatClient.Service
    return { calls, layer: Layer.succeed(ChatClient.ChatClient, service) }
  }

  /** Runs `n` texts through `stream`; the most texts read and not yet answered, at any outcome. */
  const readAhead = (n: number) =>
    Effect.gen(function* () {
      const client = fakeClient()
      let read = 0
      let emitted = 0
      let most = 0
      const input = Stream.unfold(0, (i) => (i < n ? Option.some([`t${i}`, i + 1] as const) : Option.none())).pipe(
        Stream.tap(() => Effect.sync(() => { read++ }))
      )
      yield* Embeddings.stream(input, { model, concurrency: 3, limits: { maxInputsPerRequest: 50 } }).pipe(
        Stream.runForEach((outcome) => Effect.sync(() => {
          if (outcome.index !== emitted) throw new Error(`outcome ${outcome.index} out of order at ${emitted}`)
          emitted++
          most = Math.max(most, read - emitted)
        })),
        Effect.provide(client.layer)
      )
      return { most, emitted, requests: client.calls.count, maxInFlight: client.calls.max }
    })

  it.live("outcomes in input order; read-ahead and requests in flight bounded, not growing with the input", () =>
    Effect.gen(function* () {
      const small = yield* readAhead(500)
      const large = yield* readAhead(5_000)
      expect(large.emitted).toBe(5_000)
      expect(large.requests).toBe(100)
      expect(large.maxInFlight).toBe(3)
      // The requests in flight and the one being filled (4 x 50 texts here), whatever the input's length.
      expect(large.most).toBe(small.most)
      expect(large.most).toBeLessThanOrEqual(50 * (3 + 2))
    }))

  it.effect("a failing input fails the stream with its error after the outcomes before it", () =>
    Effect.gen(function* () {
      const s = stub()
      const input = Stream.concat(Stream.fromIterable(texts(3)), Stream.fail("disk gone" as const))
      const error = yield* Effect.flip(Stream.runCollect(Embeddings.stream(input, { model })).pipe(Effect.provide(clientOver(s))))
      expect(error).toBe("disk gone")
    }))
})

describe("Embeddings.embedMany against MockServer", () => {
  it.scopedLive("base64 answers decode to the same vectors as float answers; 3,000 texts in 2 requests each way", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ latency: "0 millis" })
      const layer = ChatClient.layer({ baseUrl: server.url })
      const input = texts(3000).map((t) => `the text ${t}`)
      const asBase64 = yield* Embeddings.embedMany(input, { model, dimensions: 8 }).pipe(Effect.provide(layer))
      const asFloat = yield* Embeddings.embedMany(input, { model, dimensions: 8, encodingFormat: "float" }).pipe(Effect.provide(layer))
      expect(asBase64).toHaveLength(3000)
      expect(asBase64).toEqual(asFloat)
      expect(asBase64[0]).toHaveLength(8)
      expect(asBase64[0]).not.toEqual(asBase64[1])
      const journal = yield* server.journal
      const sent = journal.map((e) => [(e.body as { encoding_format: string }).encoding_format, (e.body as { input: Array<string> }).input.length])
      expect(sent.sort()).toEqual([
        ["base64", 2048], ["base64", 952], ["float", 2048], ["float", 952]
      ].sort())
    }))
})
