/**
 * MockServer's tool calls (src/testing/internal/toolCalls.ts): spec-valid calls of the offered
 * functions, deterministic, as `tool_choice` and `parallel_tool_calls` ask; streamed as tool-call
 * deltas; a text answer quoting the results once they are in.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { ChatSchema } from "../src/index.js"
import * as Content from "../src/testing/internal/content.js"
import { answerFromToolResults, toolsToCall } from "../src/testing/internal/toolCalls.js"
import { MockServer } from "../src/testing/index.js"
import { validatorFor } from "./helpers.js"

const weather: ChatSchema.FunctionTool = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } }, required: ["city", "days"], additionalProperties: false } }
}
const track: ChatSchema.FunctionTool = { type: "function", function: { name: "track_order", parameters: { type: "object", properties: { order: { type: "number" } } } } }
const request = (content: string, extra: Partial<ChatSchema.ChatCompletionRequest> = {}): ChatSchema.ChatCompletionRequest =>
  ({ model: "gpt-4.1-mini", messages: [{ role: "user", content }], tools: [weather, track], ...extra })
const names = (r: ChatSchema.ChatCompletionRequest) => toolsToCall(r).map((t) => t.function.name)

describe("MockServer tool calls", () => {
  it("which tools: named in the prompt (else the first), one with parallel_tool_calls false, the chosen one, none for none", () => {
    expect(names(request("What is the weather?"))).toEqual(["get_weather"])
    expect(names(request("Call track_order and get_weather please"))).toEqual(["get_weather", "track_order"])
    expect(names(request("Call track_order and get_weather", { parallel_tool_calls: false }))).toEqual(["get_weather"])
    expect(names(request("weather", { tool_choice: { type: "function", function: { name: "track_order" } } }))).toEqual(["track_order"])
    expect(names(request("get_weather", { tool_choice: "none" }))).toEqual([])
    expect(names({ model: "m", messages: [{ role: "user", content: "get_weather" }] })).toEqual([])
  })

  it("after tool results: auto answers with text quoting them; required calls again", () => {
    const messages: Array<ChatSchema.ChatMessage> = [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "call_1", content: "{\"forecast\":\"rain\"}" }
    ]
    expect(names(request("", { messages }))).toEqual([])
    expect(names(request("", { messages, tool_choice: "required" }))).toEqual(["get_weather"])
    expect(answerFromToolResults(messages, 0xabc)).toBe("Mock answer 00000abc: get_weather returned {\"forecast\":\"rain\"}.")
    const reply = Content.completion(request("", { messages }), undefined, 1)
    expect(reply.choices[0]!.message.content).toMatch(/^Mock answer [0-9a-f]{8}: get_weather returned \{"forecast":"rain"\}\.$/)
    expect(reply.choices[0]!.finish_reason).toBe("stop")
  })

  it("the completion: calls with ids and arguments that fit the parameters, deterministic, spec-valid", () => {
    const valid = validatorFor("CreateChatCompletionResponse")
    const a = Content.completion(request("get_weather in Paris, then track_order"), undefined, 1)
    const b = Content.completion(request("get_weather in Paris, then track_order"), undefined, 2)
    expect(valid(a)).toBeUndefined()
    const choice = a.choices[0]!
    expect(choice.finish_reason).toBe("tool_calls")
    expect(choice.message.content).toBe(null)
    expect(choice.message.tool_calls).toEqual(b.choices[0]!.message.tool_calls)
    const calls = (choice.message.tool_calls ?? []) as ReadonlyArray<ChatSchema.FunctionToolCall>
    expect(calls.map((c) => c.function.name)).toEqual(["get_weather", "track_order"])
    expect(new Set(calls.map((c) => c.id)).size).toBe(2)
    const args = JSON.parse(calls[0]!.function.arguments)
    expect(Object.keys(args).sort()).toEqual(["city", "days"])
    expect(typeof args.city).toBe("string")
    expect(Number.isInteger(args.days)).toBe(true)
    expect(a.usage!.completion_tokens).toBe(calls.reduce((n, c) => n + Content.countTokens(c.function.name + c.function.arguments), 0))
  })

  it("streamed: a chunk with each call's id and name, then its arguments in pieces; spec-valid; accumulates to the completion", () => {
    const valid = validatorFor("CreateChatCompletionStreamResponse")
    const req = request("track_order and get_weather", { stream: true, stream_options: { include_usage: true } })
    const whole = Content.completion(req, undefined, 3)
    const chunks = Content.streamChunks(req, whole, 8)
    for (const chunk of chunks) expect(valid(chunk)).toBeUndefined()
    const starts = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? [])).filter((t) => t.id !== undefined)
    expect(starts.map((t) => [t.index, t.function?.name, t.function?.arguments])).toEqual([[0, "get_weather", ""], [1, "track_order", ""]])
    const folded = ChatSchema.accumulate(chunks)
    expect(folded.choices[0]!.message.tool_calls).toEqual(whole.choices[0]!.message.tool_calls)
    expect(folded.choices[0]!.finish_reason).toBe("tool_calls")
    expect(folded.usage).toEqual(whole.usage)
  })

  it.scopedLive("over HTTP: the request with tools is accepted and answered with calls", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make()
      const res = yield* Effect.promise(() =>
        fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request("weather")) }).then((r) => r.json() as Promise<any>))
      expect(res.choices[0].message.tool_calls[0].function.name).toBe("get_weather")
    }))
})
