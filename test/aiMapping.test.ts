/**
 * The mappings of effect-shepherd/ai, part by part: every prompt part to chat messages, tools and
 * tool choices, response formats, completions and chunks to response parts, every ChatError to an
 * AiError, and the options' checks.
 */
import * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import * as Tool from "@effect/ai/Tool"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Pricing from "../src/Pricing.js"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Span } from "effect/Tracer"
import { ShepherdAiError, ShepherdEmbeddingModel, ShepherdLanguageModel, ShepherdTokenizer } from "../src/ai/index.js"
import * as Options from "../src/ai/internal/options.js"
import { toMessages } from "../src/ai/internal/prompt.js"
import { makeRequest, prepareResponseFormat, prepareTools, strictCompatible } from "../src/ai/internal/request.js"
import { finishReason, makeResponse, toolParams, usageOf } from "../src/ai/internal/response.js"
import { streamParts } from "../src/ai/internal/stream.js"
import { ChatClient, ChatError } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"

const bytes = new Uint8Array([1, 2, 3])
const messages = (input: Prompt.RawInput) => Either.getOrThrow(toMessages(Prompt.make(input)))
const failure = (input: Prompt.RawInput) => Either.flip(toMessages(Prompt.make(input))).pipe(Either.getOrThrow)

const GetWeather = Tool.make("get_weather", { description: "The weather", parameters: { city: Schema.String }, success: Schema.String })
const Search = Tool.make("search", { parameters: { query: Schema.String, limit: Schema.optional(Schema.Number) }, success: Schema.String })

const providerOptions = (overrides: Partial<LanguageModel.ProviderOptions> = {}): LanguageModel.ProviderOptions => ({
  prompt: Prompt.make("hi"),
  tools: [],
  toolChoice: "auto",
  responseFormat: { type: "text" },
  span: undefined as unknown as Span,
  ...overrides
})

describe("prompt -> chat messages", () => {
  it("system, user text and assistant text", () => {
    expect(messages([
      { role: "system", content: "Be terse." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: [{ type: "text", text: "Hello" }, { type: "text", text: " there" }] }
    ])).toEqual([
      { role: "system", content: "Be terse." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello there" }
    ])
  })

  it("user images: a URL as it is, bytes and base64 as data URLs", () => {
    expect(messages([{
      role: "user",
      content: [
        { type: "text", text: "Compare" },
        { type: "file", mediaType: "image/png", data: new URL("https://example.com/a.png") },
        { type: "file", mediaType: "image/png", data: bytes },
        { type: "file", mediaType: "image/*", data: "AQID" }
      ]
    }])).toEqual([{
      role: "user",
      content: [
        { type: "text", text: "Compare" },
        { type: "image_url", image_url: { url: "https://example.com/a.png" } },
        { type: "image_url", image_url: { url: "data:image/png;base64,AQID" } },
        { type: "image_url", image_url: { url: "data:image/jpeg;base64,AQID" } }
      ]
    }])
  })

  it("user audio (wav, mp3) as input_audio; other audio and audio URLs are refused", () => {
    expect(messages([{ role: "user", content: [{ type: "file", mediaType: "audio/wav", data: bytes }, { type: "file", mediaType: "audio/mpeg", data: "data:audio/mpeg;base64,AQID" }] }])[0]).toEqual({
      role: "user",
      content: [{ type: "input_audio", input_audio: { data: "AQID", format: "wav" } }, { type: "input_audio", input_audio: { data: "AQID", format: "mp3" } }]
    })
    expect(failure([{ role: "user", content: [{ type: "file", mediaType: "audio/ogg", data: bytes }] }]).description).toMatch(/only wav and mp3/)
    expect(failure([{ role: "user", content: [{ type: "file", mediaType: "audio/wav", data: new URL("https://example.com/a.wav") }] }]).description).toMatch(/not as a URL/)
  })

  it("user files: data (with its name) or a file id; a file URL is refused", () => {
    expect(messages([{
      role: "user",
      content: [
        { type: "file", mediaType: "application/pdf", data: bytes, fileName: "invoice.pdf" },
        { type: "file", mediaType: "application/pdf", data: "file-abc123" }
      ]
    }])[0]).toEqual({
      role: "user",
      content: [
        { type: "file", file: { file_data: "data:application/pdf;base64,AQID", filename: "invoice.pdf" } },
        { type: "file", file: { file_id: "file-abc123" } }
      ]
    })
    const refused = failure([{ role: "user", content: [{ type: "file", mediaType: "application/pdf", data: new URL("https://example.com/a.pdf") }] }])
    expect(refused).toBeInstanceOf(AiError.MalformedInput)
    expect(refused.description).toMatch(/does not fetch files/)
  })

  it("assistant tool calls with their ids; reasoning and provider-executed calls left out; tool results as tool messages", () => {
    expect(messages([
      { role: "user", content: "Weather?" },
      {
        role: "assistant",
        content: [
          { type: "reasoning", text: "thinking" },
          { type: "tool-call", id: "call_1", name: "get_weather", params: { city: "Paris" } },
          { type: "tool-call", id: "call_2", name: "web_search", params: {}, providerExecuted: true }
        ]
      },
      {
        role: "tool",
        content: [
          { type: "tool-result", id: "call_1", name: "get_weather", result: { forecast: "sunny" }, isFailure: false, providerExecuted: false },
          { type: "tool-result", id: "call_3", name: "echo", result: "plain text", isFailure: false, providerExecuted: false }
        ]
      }
    ])).toEqual([
      { role: "user", content: "Weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "{\"forecast\":\"sunny\"}" },
      { role: "tool", tool_call_id: "call_3", content: "plain text" }
    ])
  })

  it("an empty prompt is refused (chat completions needs a message)", () => {
    expect(failure([]).description).toMatch(/no messages/)
  })
})

describe("tools, tool choice and response format", () => {
  it("function tools: strict when their parameters allow it (all required, closed), else not", () => {
    const { tool_choice, tools } = Either.getOrThrow(prepareTools(providerOptions({ tools: [GetWeather, Search] })))
    expect(tool_choice).toBe("auto")
    expect(tools![0]).toEqual({
      type: "function",
      function: { name: "get_weather", description: "The weather", parameters: expect.objectContaining({ required: ["city"] }), strict: true }
    })
    expect(tools![1]!.function).not.toHaveProperty("strict")
    expect(Either.getOrThrow(prepareTools(providerOptions()))).toEqual({})
  })

  it("every toolChoice", () => {
    const choice = (toolChoice: LanguageModel.ToolChoice<string>) => Either.getOrThrow(prepareTools(providerOptions({ tools: [GetWeather], toolChoice }))).tool_choice
    expect([choice("auto"), choice("none"), choice("required")]).toEqual(["auto", "none", "required"])
    expect(choice({ tool: "get_weather" })).toEqual({ type: "function", function: { name: "get_weather" } })
    expect(choice({ oneOf: ["get_weather"] })).toBe("auto")
    expect(choice({ oneOf: ["get_weather"], mode: "required" })).toBe("required")
  })

  it("a provider-defined tool is refused", () => {
    const WebSearch = Tool.providerDefined({ id: "openai.web_search", toolkitName: "WebSearch", providerName: "web_search", args: {}, success: Schema.String })({})
    const refused = Either.flip(prepareTools(providerOptions({ tools: [WebSearch] }))).pipe(Either.getOrThrow)
    expect(refused.description).toMatch(/function tools only/)
  })

  it("structured output: strict json_schema when the schema allows it; else json_object with the schema in a system message", () => {
    const strict = prepareResponseFormat(providerOptions({ responseFormat: { type: "json", objectName: "my answer!", schema: Schema.Struct({ a: Schema.String }).annotations({ description: "An answer" }) } }))
    expect(strict).toEqual({ response_format: { type: "json_schema", json_schema: { name: "my_answer_", description: "An answer", schema: expect.objectContaining({ type: "object" }), strict: true } } })
    const loose = prepareResponseFormat(providerOptions({ responseFormat: { type: "json", objectName: "x", schema: Schema.Struct({ a: Schema.optional(Schema.String) }) } }))
    expect(loose.response_format).toEqual({ type: "json_object" })
    expect(loose.instruction?.content).toMatch(/^Answer with one JSON value only.*\n\{"type":"object"/s)
    const request = Either.getOrThrow(makeRequest("m", { seed: 1 }, providerOptions({ responseFormat: { type: "json", objectName: "x", schema: Schema.Struct({ a: Schema.optional(Schema.String) }) } })))
    expect(request.messages.map((m) => m.role)).toEqual(["system", "user"])
    expect(request).toMatchObject({ model: "m", seed: 1, response_format: { type: "json_object" } })
  })

  it("strictCompatible: closed objects with every property required, no keyword strict mode rejects", () => {
    const closed = { type: "object", properties: { a: { type: "string" } }, required: ["a"], additionalProperties: false }
    expect(strictCompatible(closed)).toBe(true)
    expect(strictCompatible({ ...closed, required: [] })).toBe(false)
    expect(strictCompatible({ ...closed, additionalProperties: { type: "number" } })).toBe(false)
    expect(strictCompatible({ type: "array", items: closed })).toBe(false)
    expect(strictCompatible({ ...closed, properties: { a: { type: "array", items: { ...closed, required: [] } } } })).toBe(false)
    expect(strictCompatible({ ...closed, properties: { a: { anyOf: [{ type: "string" }, { type: "null" }] } } })).toBe(true)
    expect(strictCompatible({ ...closed, properties: { a: { oneOf: [{ type: "string" }] } } })).toBe(false)
    expect(strictCompatible({ ...closed, properties: { a: { $ref: "#/$defs/B" } }, $defs: { B: { ...closed, required: [] } } })).toBe(false)
  })
})

const result = (message: Partial<ChatSchema.ResponseMessage>, finish: string | null = "stop", usage?: ChatSchema.CompletionUsage): ChatClient.ChatResult => ({
  completion: {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_700_000_000,
    model: "gpt-4.1-mini",
    choices: [{ index: 0, message: { role: "assistant", content: null, ...message }, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage })
  },
  requestId: "req_1",
  status: 200,
  attempts: 2,
  latencyMillis: 12,
  headers: {}
})

describe("completions -> response parts", () => {
  it("metadata, text, tool calls and a finish part with usage and Shepherd's metadata", () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100, prompt_tokens_details: { cached_tokens: 200 }, completion_tokens_details: { reasoning_tokens: 7 } }
    const parts = Either.getOrThrow(makeResponse(result({
      content: "Checking.",
      tool_calls: [{ id: "call_9", type: "function", function: { name: "get_weather", arguments: "{\"city\": \"Oslo\",}" } }]
    }, "tool_calls", usage), false))
    expect(parts).toEqual([
      { type: "response-metadata", id: "chatcmpl-1", modelId: "gpt-4.1-mini", timestamp: "2023-11-14T22:13:20.000Z" },
      { type: "text", text: "Checking." },
      { type: "tool-call", id: "call_9", name: "get_weather", params: { city: "Oslo" } },
      {
        type: "finish",
        reason: "tool-calls",
        usage: { inputTokens: 1000, outputTokens: 100, totalTokens: 1100, reasoningTokens: 7, cachedInputTokens: 200 },
        metadata: { shepherd: { requestId: "req_1", attempts: 2, status: 200, latencyMillis: 12, costMicroUsd: Option.getOrThrow(Pricing.cost("gpt-4.1-mini", usage)) } }
      }
    ])
  })

  it("a refusal is a text part marked as one; no choices or unreadable tool arguments are MalformedOutput", () => {
    const parts = Either.getOrThrow(makeResponse(result({ refusal: "I can't help with that." }, "content_filter"), false))
    expect(parts[1]).toEqual({ type: "text", text: "I can't help with that.", metadata: { shepherd: { refusal: true } } })
    expect(parts[2]).toMatchObject({ type: "finish", reason: "content-filter" })
    const none = { ...result({}), completion: { ...result({}).completion, choices: [] } }
    expect(Either.flip(makeResponse(none, false)).pipe(Either.getOrThrow)).toBeInstanceOf(AiError.MalformedOutput)
    expect(Either.isLeft(toolParams("f", "not json at all"))).toBe(true)
    expect(Either.isLeft(toolParams("f", "{\"__proto__\": {\"x\": 1}}"))).toBe(true)
    expect(toolParams("f", "")).toEqual(Either.right({}))
    // A call cut off mid-arguments is not run with what a repair made of it.
    expect(Either.isLeft(toolParams("f", "{\"amount\": 10"))).toBe(true)
    expect(toolParams("f", "{\"amount\": 10,}")).toEqual(Either.right({ amount: 10 }))
  })

  it("a cached answer cost nothing", () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 100, total_tokens: 1100 }
    const parts = Either.getOrThrow(makeResponse({ ...result({ content: "x" }, "stop", usage), cached: true }, false))
    expect(parts.at(-1)).toMatchObject({ type: "finish", metadata: { shepherd: { costMicroUsd: 0 } } })
  })

  it("JSON answers: the recovered value as strict JSON, with how it was recovered", () => {
    const parts = Either.getOrThrow(makeResponse(result({ content: "Sure:\n```json\n{\"a\": 1,}\n```" }), true))
    expect(parts[1]).toEqual({ type: "text", text: "{\"a\":1}", metadata: { shepherd: { recovery: "repaired", rawText: "Sure:\n```json\n{\"a\": 1,}\n```" } } })
    const plain = Either.getOrThrow(makeResponse(result({ content: "no json here" }), true))
    expect(plain[1]).toEqual({ type: "text", text: "no json here" })
  })

  it("finish reasons and usage", () => {
    expect(["stop", "length", "content_filter", "tool_calls", "function_call", "error", "eos", null].map(finishReason))
      .toEqual(["stop", "length", "content-filter", "tool-calls", "tool-calls", "error", "other", "unknown"])
    expect(usageOf(undefined)).toEqual({ inputTokens: undefined, outputTokens: undefined, totalTokens: undefined })
  })
})

const chunk = (delta: ChatSchema.ChunkDelta, finish: string | null = null, usage?: ChatSchema.CompletionUsage): ChatSchema.ChatCompletionChunk => ({
  id: "chatcmpl-s",
  object: "chat.completion.chunk",
  created: 1_700_000_000,
  model: "gpt-4.1-mini",
  choices: usage === undefined ? [{ index: 0, delta, finish_reason: finish }] : [],
  ...(usage === undefined ? {} : { usage })
})

describe("chunks -> stream parts", () => {
  it.effect("text, then interleaved tool calls joined by index, ended at the finish reason, then the finish part", () =>
    Effect.gen(function* () {
      const chunks = [
        chunk({ role: "assistant", content: "Let me " }),
        chunk({ content: "check." }),
        chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } }] }),
        chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "get_weather", arguments: "{\"city\":" } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: "{\"city\": \"Rome\",}" } }, { index: 1, function: { arguments: "\"Oslo\"}" } }] }),
        chunk({}, "tool_calls"),
        chunk({}, null, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 })
      ]
      const parts = Chunk.toArray(yield* Stream.runCollect(streamParts(Stream.fromIterable(chunks))))
      expect(parts).toEqual([
        { type: "response-metadata", id: "chatcmpl-s", modelId: "gpt-4.1-mini", timestamp: "2023-11-14T22:13:20.000Z" },
        { type: "text-start", id: "0" },
        { type: "text-delta", id: "0", delta: "Let me " },
        { type: "text-delta", id: "0", delta: "check." },
        { type: "text-end", id: "0" },
        { type: "tool-params-start", id: "call_a", name: "get_weather" },
        { type: "tool-params-start", id: "call_b", name: "get_weather" },
        { type: "tool-params-delta", id: "call_b", delta: "{\"city\":" },
        { type: "tool-params-delta", id: "call_a", delta: "{\"city\": \"Rome\",}" },
        { type: "tool-params-delta", id: "call_b", delta: "\"Oslo\"}" },
        { type: "tool-params-end", id: "call_a" },
        { type: "tool-call", id: "call_a", name: "get_weather", params: { city: "Rome" } },
        { type: "tool-params-end", id: "call_b" },
        { type: "tool-call", id: "call_b", name: "get_weather", params: { city: "Oslo" } },
        {
          type: "finish",
          reason: "tool-calls",
          usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 },
          metadata: { shepherd: { costMicroUsd: expect.any(Number) } }
        }
      ])
    }))

  it.effect("a stream that ends without a finish reason or usage still ends its text and finishes unknown", () =>
    Effect.gen(function* () {
      const parts = Chunk.toArray(yield* Stream.runCollect(streamParts(Stream.fromIterable([chunk({ content: "Hi" })]))))
      expect(parts.slice(-2)).toEqual([
        { type: "text-end", id: "0" },
        { type: "finish", reason: "unknown", usage: { inputTokens: undefined, outputTokens: undefined, totalTokens: undefined }, metadata: { shepherd: { costMicroUsd: undefined } } }
      ])
    }))
})

const origin = { module: "ShepherdLanguageModel", method: "generateText", url: "http://x/v1/chat/completions" }

describe("ChatError -> AiError, the ChatError kept as the cause", () => {
  const cases: ReadonlyArray<readonly [ChatError.ChatError, string, Record<string, unknown>]> = [
    [new ChatError.RateLimitError({ attempts: 3, retryAfterMillis: 1500, requestId: "req_1" }), "HttpResponseError", { reason: "StatusCode", response: { status: 429, headers: { "x-request-id": "req_1", "retry-after-ms": "1500" } } }],
    [new ChatError.ApiError({ status: 401, detail: "bad key", attempts: 1 }), "HttpResponseError", { reason: "StatusCode", response: { status: 401, headers: {} }, body: "bad key" }],
    [new ChatError.ResponseDecodeError({ status: 200, detail: "not JSON", bodyExcerpt: "<html>", attempts: 1 }), "HttpResponseError", { reason: "Decode", body: "<html>" }],
    [new ChatError.TimeoutError({ phase: "total", timeoutMillis: 1000, attempts: 2 }), "HttpRequestError", { reason: "Transport" }],
    [new ChatError.TransportError({ code: "ECONNRESET", detail: "reset", attempts: 1 }), "HttpRequestError", { reason: "Transport" }],
    [new ChatError.BudgetExceededError({ limitMicroUsd: 1, committedMicroUsd: 1, requiredMicroUsd: 5 }), "UnknownError", {}],
    [new ChatError.LimiterUnavailableError({ store: "rate-limit", location: "redis://h:6379", detail: "refused" }), "UnknownError", {}]
  ]
  it.each(cases)("%s", (chatError, tag, fields) => {
    const error = ShepherdAiError.fromChatError(chatError, origin)
    expect(AiError.isAiError(error)).toBe(true)
    expect(error._tag).toBe(tag)
    expect(error).toMatchObject({ module: "ShepherdLanguageModel", method: "generateText", description: chatError.message, ...fields })
    if (error._tag === "HttpRequestError" || error._tag === "HttpResponseError") expect(error.request).toMatchObject({ method: "POST", url: origin.url, headers: {} })
    expect(ShepherdAiError.chatErrorOf(error)).toEqual(Option.some(chatError))
  })

  it("chatErrorOf: none for an AiError that did not come from a ChatError, or for anything else", () => {
    expect(ShepherdAiError.chatErrorOf(new AiError.MalformedOutput({ module: "m", method: "x" }))).toEqual(Option.none())
    // @effect/ai puts the request URL in the message: a key in the base URL's user info or query stays out.
    const keyed = ShepherdAiError.fromChatError(new ChatError.TransportError({ code: "ECONNREFUSED", detail: "refused", attempts: 1 }), { ...origin, url: "http://user:sk-userinfo@x/v1/chat/completions?key=sk-query" })
    expect(`${keyed.message} ${JSON.stringify(keyed)}`).not.toMatch(/sk-userinfo|sk-query/)
    expect(ShepherdAiError.chatErrorOf(new ChatError.ApiError({ status: 400, detail: "x", attempts: 1 }))).toEqual(Option.none())
  })
})

describe("options, checked when the layer is built", () => {
  const configError = (effect: Effect.Effect<unknown, unknown, never>) => {
    const exit = Effect.runSyncExit(effect)
    if (Exit.isSuccess(exit) || exit.cause._tag !== "Fail") throw new Error("expected a failure")
    return exit.cause.error as { readonly _op: string; readonly path: ReadonlyArray<string>; readonly message: string }
  }
  it("a ConfigError naming the option", () => {
    expect(configError(Options.languageModel({ model: " " })).path).toEqual(["model"])
    expect(configError(Options.languageModel({ model: "m", config: { temperature: 5 } })).path).toEqual(["config", "temperature"])
    expect(configError(Options.languageModel({ model: "m", config: { messages: [] } })).path).toEqual(["config", "messages"])
    expect(configError(Options.languageModel({ model: "m", config: [] })).path).toEqual(["config"])
    expect(configError(ShepherdTokenizer.make({ model: "" })).path).toEqual(["model"])
    expect(Effect.runSync(Options.languageModel({ model: "m", config: { temperature: 0.5, reasoning_effort: "low" } }))).toEqual({ model: "m", config: { temperature: 0.5, reasoning_effort: "low" } })
  })

  it("the layers fail with it before anything needs the ChatClient", () => {
    const unused = Effect.provideService(ChatClient.ChatClient, {} as ChatClient.Service)
    expect(configError(unused(ShepherdLanguageModel.make({ model: "" }))).path).toEqual(["model"])
    expect(configError(unused(ShepherdEmbeddingModel.make({ model: "m", dimensions: 0 }))).path).toEqual(["dimensions"])
    expect(configError(unused(ShepherdEmbeddingModel.make({ model: "m", limits: { maxInputsPerRequest: 0 } }))).path).toEqual(["limits", "maxInputsPerRequest"])
  })
})
