import { describe, expect, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { ChatSchema } from "../src/index.js"
import { validatorFor } from "./helpers.js"

const validRequest = validatorFor("CreateChatCompletionRequest")
const validResponse = validatorFor("CreateChatCompletionResponse")
const validError = validatorFor("ErrorResponse")

describe("ChatCompletionRequest", () => {
  it("every request generated from the Schema validates against the OpenAI spec", () => {
    // The named fields only: the index signature would also invent random extra keys.
    const arbitrary = Arbitrary.make(Schema.Struct(ChatSchema.ChatCompletionRequestFields))
    FastCheck.assert(
      FastCheck.property(arbitrary, (request) => {
        const wire = JSON.parse(JSON.stringify(request))
        const problem = validRequest(wire)
        if (problem !== undefined) throw new Error(`${problem}\n${JSON.stringify(wire).slice(0, 2000)}`)
      }),
      { numRuns: 500 }
    )
  })

  it("keeps fields it does not know (a provider's own parameters) when decoding", () => {
    const input = { model: "m", messages: [{ role: "user", content: "hi" }], top_k: 40, reasoning_effort: "low" }
    const decoded = Schema.decodeUnknownSync(ChatSchema.ChatCompletionRequest)(input)
    expect(decoded).toEqual(input)
  })

  it("rejects what the spec rejects: no messages, a bad role, temperature out of range", () => {
    const decode = Schema.decodeUnknownEither(ChatSchema.ChatCompletionRequest)
    const bad = [
      { model: "m", messages: [] },
      { model: "m", messages: [{ role: "robot", content: "x" }] },
      { model: "m", messages: [{ role: "user", content: "x" }], temperature: 3 },
      { messages: [{ role: "user", content: "x" }] }
    ]
    for (const input of bad) {
      expect(Either.isLeft(decode(input))).toBe(true)
      expect(validRequest(input)).toBeDefined()
    }
  })
})

describe("ChatCompletion", () => {
  const response = {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "gpt-4.1",
    choices: [{ index: 0, message: { role: "assistant", content: "hi", refusal: null, annotations: [] }, finish_reason: "stop", logprobs: null }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, prompt_tokens_details: { cached_tokens: 0 } },
    system_fingerprint: "fp",
    provider_extra: { region: "eu" }
  }

  it("decodes a spec-valid response and keeps unknown fields", () => {
    expect(validResponse(response)).toBeUndefined()
    const decoded = Schema.decodeUnknownSync(ChatSchema.ChatCompletion, { onExcessProperty: "preserve" })(response)
    expect(decoded).toEqual(response)
  })

  it("accepts what lenient providers send: no usage, no refusal, their own finish reasons", () => {
    const lenient = { id: "x", object: "chat.completion", created: 1, model: "m", choices: [{ index: 0, message: { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] }, finish_reason: "eos" }] }
    expect(Either.isRight(Schema.decodeUnknownEither(ChatSchema.ChatCompletion)(lenient))).toBe(true)
  })

  it("ErrorResponse matches the spec's error body", () => {
    const body = { error: { message: "bad", type: "invalid_request_error", param: null, code: null } }
    expect(validError(body)).toBeUndefined()
    expect(Schema.decodeUnknownSync(ChatSchema.ErrorResponse)(body)).toEqual(body)
  })
})

describe("ChatCompletionChunk and accumulate", () => {
  const validChunk = validatorFor("CreateChatCompletionStreamResponse")
  const base = { id: "chatcmpl-9", object: "chat.completion.chunk", created: 1, model: "gpt-4.1", system_fingerprint: "fp" }
  const chunks = [
    { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, logprobs: null }] },
    { ...base, choices: [{ index: 0, delta: { content: "Let me " }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { content: "check." }, finish_reason: null }, { index: 1, delta: { refusal: "I can't" }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "track", arguments: "" } }] }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: "call_2", type: "function", function: { name: "refund", arguments: "{\"order\"" } }] }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: "{\"order\": 42}" } }, { index: 1, function: { arguments: ": 42}" } }] }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }, { index: 1, delta: { refusal: " help." }, finish_reason: "stop" }] },
    { ...base, choices: [], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 } }
  ]

  it("spec-valid chunks decode, unknown fields kept", () => {
    for (const chunk of chunks) {
      expect(validChunk(chunk)).toBeUndefined()
      expect(Schema.decodeUnknownSync(ChatSchema.ChatCompletionChunk, { onExcessProperty: "preserve" })(chunk)).toEqual(chunk)
    }
  })

  it("accumulate joins content, refusals and tool-call pieces by index, keeps the last finish reason and the usage", () => {
    const decoded = chunks.map((c) => Schema.decodeUnknownSync(ChatSchema.ChatCompletionChunk)(c))
    const completion = ChatSchema.accumulate(decoded)
    expect(completion.choices[0]!.message).toEqual({
      role: "assistant",
      content: "Let me check.",
      tool_calls: [
        { id: "call_1", type: "function", function: { name: "track", arguments: "{\"order\": 42}" } },
        { id: "call_2", type: "function", function: { name: "refund", arguments: "{\"order\": 42}" } }
      ]
    })
    expect(completion.choices[0]!.finish_reason).toBe("tool_calls")
    expect(completion.choices[1]!.message).toEqual({ role: "assistant", content: null, refusal: "I can't help." })
    expect(completion.usage).toEqual({ prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 })
    expect(validResponse({ ...completion, choices: completion.choices.map((c) => ({ ...c, logprobs: null, message: { refusal: null, ...c.message } })) })).toBeUndefined()
  })
})
