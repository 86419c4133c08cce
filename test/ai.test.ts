/**
 * Programs written only against @effect/ai's public API (LanguageModel, Toolkit, Chat, ExecutionPlan,
 * Tokenizer), run with effect-shepherd/ai's layers over a ChatClient against MockServer in-process.
 */
import * as AiError from "@effect/ai/AiError"
import * as Chat from "@effect/ai/Chat"
import * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import * as Tokenizer from "@effect/ai/Tokenizer"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as ExecutionPlan from "effect/ExecutionPlan"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ShepherdAiError, ShepherdEmbeddingModel, ShepherdLanguageModel, ShepherdTokenizer } from "../src/ai/index.js"
import { Budget, ChatClient } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

const GetWeather = Tool.make("get_weather", {
  description: "The weather in a city",
  parameters: { city: Schema.String },
  success: Schema.Struct({ city: Schema.String, forecast: Schema.String })
})
const TrackOrder = Tool.make("track_order", {
  description: "Where an order is",
  parameters: { order: Schema.Number },
  success: Schema.String
})
const Tools = Toolkit.make(GetWeather, TrackOrder)
const ToolsLive = Tools.toLayer({
  get_weather: ({ city }) => Effect.succeed({ city, forecast: "sunny" }),
  track_order: ({ order }) => Effect.succeed(`order ${order} ships tomorrow`)
})

const Client = Layer.unwrapEffect(Effect.map(MockServer.MockServer, (server) => ChatClient.layer({ baseUrl: server.url, tracing: false, retry: { maxRetries: 0 } })))
const Model = ShepherdLanguageModel.layer({ model: "gpt-4.1-mini", config: { temperature: 0.2 } })
const Embeddings = ShepherdEmbeddingModel.layer({ model: "text-embedding-3-small", dimensions: 8 })
const Env = Layer.mergeAll(Layer.merge(Model, Embeddings).pipe(Layer.provideMerge(Client)), ToolsLive, ShepherdTokenizer.layer({ model: "gpt-4.1-mini" })).pipe(
  Layer.provideMerge(MockServer.layer())
)

/** The chat-completion bodies the server received since the last reset. */
const sent = Effect.map(Effect.flatMap(MockServer.MockServer, (s) => s.journal), (journal) =>
  journal.filter((e) => e.path === "/v1/chat/completions").map((e) => e.body as Record<string, any>))
const reset = Effect.flatMap(MockServer.MockServer, (s) => s.reset)

// One server and client for the file, on the live clock (a 429's pause is real time). Not
// @effect/vitest's `layer`: it replaces the shared `it.effect` of every file run after this one in
// the worker (vitest runs with isolate: false).
const runtime = ManagedRuntime.make(Env)
afterAll(() => runtime.dispose())
type Services = ManagedRuntime.ManagedRuntime.Context<typeof runtime>
const test = (name: string, body: () => Effect.Effect<void, unknown, Services>) => it(name, () => runtime.runPromise(body()))

describe("effect-shepherd/ai against MockServer", () => {
  test("generateText with a Toolkit: function tools sent, the model's calls handled by the toolkit, then answered", () =>
    Effect.gen(function* () {
      yield* reset
      const prompt = Prompt.make("What is the weather in Paris? Use get_weather.")
      const first = yield* LanguageModel.generateText({ prompt, toolkit: Tools })
      expect(first.finishReason).toBe("tool-calls")
      expect(first.toolCalls.map((c) => c.name)).toEqual(["get_weather"])
      expect(first.toolCalls[0]!.id).toMatch(/^call_[0-9a-f]{8}$/)
      expect(first.toolResults[0]!.result).toEqual({ city: (first.toolCalls[0]!.params as { city: string }).city, forecast: "sunny" })
      const [request] = yield* sent
      expect(request!.tools).toEqual([
        {
          type: "function",
          function: {
            name: "get_weather",
            description: "The weather in a city",
            parameters: { type: "object", required: ["city"], properties: { city: { type: "string" } }, additionalProperties: false },
            strict: true
          }
        },
        expect.objectContaining({ function: expect.objectContaining({ name: "track_order" }) })
      ])
      expect(request!.tool_choice).toBe("auto")
      expect(request!.temperature).toBe(0.2)

      // The conversation continued with the calls and their results: the model answers from them.
      const second = yield* LanguageModel.generateText({ prompt: Prompt.merge(prompt, Prompt.fromResponseParts(first.content)), toolkit: Tools })
      expect(second.finishReason).toBe("stop")
      expect(second.text).toContain(`get_weather returned {"city":`)
      const [, followUp] = yield* sent
      expect(followUp!.messages.map((m: { role: string }) => m.role)).toEqual(["user", "assistant", "tool"])
      expect(followUp!.messages[1].tool_calls[0].id).toBe(first.toolCalls[0]!.id)
      expect(followUp!.messages[2].tool_call_id).toBe(first.toolCalls[0]!.id)
    }))

  test("toolChoice: a named tool, none, and oneOf with required", () =>
    Effect.gen(function* () {
      yield* reset
      const named = yield* LanguageModel.generateText({ prompt: "Where is order 7?", toolkit: Tools, toolChoice: { tool: "track_order" } })
      expect(named.toolResults.map((r) => r.name)).toEqual(["track_order"])
      const none = yield* LanguageModel.generateText({ prompt: "Hi", toolkit: Tools, toolChoice: "none" })
      expect(none.toolCalls).toEqual([])
      const oneOf = yield* LanguageModel.generateText({ prompt: "Hi", toolkit: Tools, toolChoice: { oneOf: ["track_order"], mode: "required" } })
      expect(oneOf.toolCalls.map((c) => c.name)).toEqual(["track_order"])
      const bodies = yield* sent
      expect(bodies.map((b) => b.tool_choice)).toEqual([{ type: "function", function: { name: "track_order" } }, "none", "required"])
      expect(bodies[2]!.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(["track_order"])
    }))

  test("generateObject: json_schema (strict) asked for, the answer decoded with the Schema, metadata from Shepherd", () =>
    Effect.gen(function* () {
      yield* reset
      const Answer = Schema.Struct({ summary: Schema.String, keywords: Schema.Array(Schema.String), score: Schema.Number })
      const response = yield* LanguageModel.generateObject({ prompt: "Summarise: the parcel arrived late. It was damaged.", schema: Answer, objectName: "answer" })
      expect(response.value.summary).toBe("Summarise: the parcel arrived late. It was damaged.")
      expect(response.value.keywords.length).toBeGreaterThan(0)
      const [request] = yield* sent
      expect(request!.response_format).toEqual({ type: "json_schema", json_schema: { name: "answer", schema: expect.objectContaining({ type: "object" }), strict: true } })
      const finish = response.content.find((p) => p.type === "finish")!
      expect(finish.metadata.shepherd).toMatchObject({ requestId: expect.stringMatching(/^req_mock_/), attempts: 1, status: 200, recovery: "strict" })
      expect(finish.metadata.shepherd?.costMicroUsd).toBeGreaterThan(0)
      expect(response.usage.inputTokens).toBeGreaterThan(0)
    }))

  test("streamText: text deltas that join into the whole answer, a finish part with usage and cost", () =>
    Effect.gen(function* () {
      const prompt = "Tell me about shipping times."
      const whole = yield* LanguageModel.generateText({ prompt })
      const parts = Chunk.toArray(yield* Stream.runCollect(LanguageModel.streamText({ prompt })))
      const types = parts.map((p) => p.type)
      expect(types[0]).toBe("response-metadata")
      expect(types[1]).toBe("text-start")
      expect(types.slice(-2)).toEqual(["text-end", "finish"])
      const text = parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : [])).join("")
      expect(text).toBe(whole.text)
      const finish = parts.at(-1)!
      if (finish.type !== "finish") throw new Error("no finish")
      expect(finish.reason).toBe("stop")
      expect(finish.usage).toMatchObject({ inputTokens: whole.usage.inputTokens, outputTokens: whole.usage.outputTokens })
      expect(finish.metadata.shepherd?.costMicroUsd).toBe(whole.content.find((p) => p.type === "finish")!.metadata.shepherd?.costMicroUsd)
      const [, streamed] = (yield* sent).slice(-2)
      expect(streamed).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    }))

  test("streamText with a Toolkit: tool-call deltas, the call whole with its id, and the handler's result", () =>
    Effect.gen(function* () {
      const parts = Chunk.toArray(yield* Stream.runCollect(LanguageModel.streamText({ prompt: "Use track_order for order 12", toolkit: Tools })))
      const types = parts.map((p) => p.type)
      expect(types.filter((t) => t.startsWith("tool-"))[0]).toBe("tool-params-start")
      expect(types).toContain("tool-params-delta")
      const call = parts.find((p) => p.type === "tool-call")!
      const result = parts.find((p) => p.type === "tool-result")!
      if (call.type !== "tool-call" || result.type !== "tool-result") throw new Error("no call")
      const deltas = parts.flatMap((p) => (p.type === "tool-params-delta" && p.id === call.id ? [p.delta] : [])).join("")
      expect(JSON.parse(deltas)).toEqual(call.params)
      expect(result.id).toBe(call.id)
      expect(result.result).toBe(`order ${(call.params as { order: number }).order} ships tomorrow`)
      const finish = parts.find((p) => p.type === "finish")!
      expect(finish.type === "finish" && finish.reason).toBe("tool-calls")
    }))

  test("a Chat session sends the history with each turn", () =>
    Effect.gen(function* () {
      yield* reset
      const chat = yield* Chat.fromPrompt([{ role: "system", content: "You are terse." }])
      const one = yield* chat.generateText({ prompt: "Where is my parcel?" })
      yield* chat.generateText({ prompt: "And the invoice?" })
      const bodies = yield* sent
      expect(bodies[1]!.messages).toEqual([
        { role: "system", content: "You are terse." },
        { role: "user", content: "Where is my parcel?" },
        { role: "assistant", content: one.text },
        { role: "user", content: "And the invoice?" }
      ])
    }))

  test("an ExecutionPlan falls back from one model to the next when a call fails", () =>
    Effect.gen(function* () {
      yield* reset
      const server = yield* MockServer.MockServer
      yield* server.setScript([{ type: "bad_request" }])
      const plan = ExecutionPlan.make(
        { provide: ShepherdLanguageModel.model("primary-model") },
        { provide: ShepherdLanguageModel.model("fallback-model") }
      )
      const response = yield* LanguageModel.generateText({ prompt: "Hello" }).pipe(Effect.withExecutionPlan(plan))
      expect(response.text).toContain("Mock answer")
      expect((yield* sent).map((b) => b.model)).toEqual(["primary-model", "fallback-model"])
    }))

  test("a failure is an AiError whose cause is the ChatError (429: HttpResponseError, status 429)", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.MockServer
      yield* server.setScript([{ type: "rate_limit", retryAfterMillis: 5 }])
      const error = yield* Effect.flip(LanguageModel.generateText({ prompt: "Hello" }))
      expect(AiError.isAiError(error)).toBe(true)
      expect(error._tag).toBe("HttpResponseError")
      if (error._tag !== "HttpResponseError") return
      expect(error.response.status).toBe(429)
      expect(Option.map(ShepherdAiError.chatErrorOf(error), (e) => e._tag)).toEqual(Option.some("RateLimitError"))
      expect(error.request.url).toBe(`${server.url}/chat/completions`)
    }))

  test("a budget refusal is an UnknownError whose cause is the BudgetExceededError, and nothing is sent", () =>
    Effect.gen(function* () {
      yield* reset
      const error = yield* Effect.flip(LanguageModel.generateText({ prompt: "Hello" }).pipe(
        Effect.provide(Budget.layer({ maxUsd: 0.0000001 }))
      ))
      expect(error._tag).toBe("UnknownError")
      expect(Option.map(ShepherdAiError.chatErrorOf(error), (e) => e._tag)).toEqual(Option.some("BudgetExceededError"))
      expect(yield* sent).toEqual([])
    }))

  test("EmbeddingModel: embed, and embeds made together sent as one request of several inputs (Embeddings.embedMany)", () =>
    Effect.gen(function* () {
      yield* reset
      const embeddings = yield* EmbeddingModel.EmbeddingModel
      const one = yield* embeddings.embed("Where is my parcel?")
      expect(one).toHaveLength(8)
      const texts = ["Where is my parcel?", "Refund please", "Opening hours"]
      const many = yield* Effect.forEach(texts, embeddings.embed, { batching: true })
      expect(many[0]).toEqual(one)
      expect(many[1]).not.toEqual(one)
      const bodies = (yield* Effect.flatMap(MockServer.MockServer, (s) => s.journal)).filter((e) => e.path === "/v1/embeddings").map((e) => e.body)
      expect(bodies).toEqual([
        { model: "text-embedding-3-small", input: ["Where is my parcel?"], dimensions: 8, encoding_format: "base64" },
        { model: "text-embedding-3-small", input: texts, dimensions: 8, encoding_format: "base64" }
      ])
      const server = yield* MockServer.MockServer
      yield* server.setScript([{ type: "bad_request" }])
      const error = yield* Effect.flip(embeddings.embed("x"))
      expect(error._tag).toBe("HttpResponseError")
      expect(Option.map(ShepherdAiError.chatErrorOf(error), (e) => e._tag)).toEqual(Option.some("ApiError"))
      // A text refused before sending (the API refuses empty input): MalformedInput, nothing sent.
      yield* reset
      const empty = yield* Effect.flip(embeddings.embed(""))
      expect(empty._tag).toBe("MalformedInput")
      expect((empty as { readonly cause?: { readonly _tag?: string } }).cause?._tag).toBe("EmbeddingsError")
      expect((yield* Effect.flatMap(MockServer.MockServer, (s) => s.journal)).filter((e) => e.path === "/v1/embeddings")).toEqual([])
    }))

  test("Tokenizer: tokenize and truncate with gpt-tokenizer's chat template", () =>
    Effect.gen(function* () {
      const tokenizer = yield* Tokenizer.Tokenizer
      const short = yield* tokenizer.tokenize("hello there")
      const long = yield* tokenizer.tokenize([{ role: "user", content: "hello there" }, { role: "assistant", content: "hi, how can I help?" }])
      expect(short.length).toBeGreaterThan(2)
      expect(long.length).toBeGreaterThan(short.length)
      const kept = yield* tokenizer.truncate([{ role: "user", content: "a long first question about parcels" }, { role: "user", content: "hi" }], short.length)
      expect(kept.content.map((m) => m.role === "user" && m.content[0]?.type === "text" ? m.content[0].text : "")).toEqual(["hi"])
    }))
})

describe("effect-shepherd/ai JSON recovery", () => {
  it.scopedLive("generateObject recovers fenced, prosy, trailing-comma JSON before @effect/ai decodes it, and says so", () =>
    Effect.gen(function* () {
      const Answer = Schema.Struct({ summary: Schema.String, score: Schema.Number })
      const response = yield* LanguageModel.generateObject({ prompt: "Rate the delivery.", schema: Answer })
      expect(response.value.summary).toBe("Rate the delivery.")
      const text = response.content.find((p) => p.type === "text")!
      expect(text.metadata.shepherd?.recovery).toBe("repaired")
      expect(text.metadata.shepherd?.rawText).toMatch(/^Here is the JSON you asked for:\n```json/)
      expect(response.content.find((p) => p.type === "finish")!.metadata.shepherd?.recovery).toBe("repaired")
    }).pipe(
      Effect.provide(Model.pipe(Layer.provide(Client), Layer.provide(MockServer.layer({ jsonContent: { fence: true, prose: true, trailingComma: true } }))))
    ))
})
