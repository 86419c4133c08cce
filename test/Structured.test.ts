import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatClient, JsonParser, Structured } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { completionReply, stubClient, type StubReply } from "./helpers.js"

// The object MockServer's JSON-content mode builds from a prompt.
const Answer = Schema.Struct({
  answer_id: Schema.String,
  summary: Schema.String,
  keywords: Schema.Array(Schema.String),
  sentiment: Schema.Literal("positive", "neutral", "negative"),
  score: Schema.Number
})
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "Summarise the refund policy for damaged items" }] }

const completionWith = (content: string): StubReply => completionReply({ content, model: "m" })

describe("Structured.generate against MockServer's JSON-content modes", () => {
  for (const [mode, options] of [
    ["clean", undefined],
    ["fenced", { fence: true }],
    ["prose", { prose: true }],
    ["trailing commas", { trailingComma: true }],
    ["fenced, prose and trailing commas", { fence: true, prose: true, trailingComma: true }]
  ] as const) {
    it.scopedLive(`${mode}: the right value, in one request`, () =>
      Effect.gen(function* () {
        const mock = yield* MockServer.make(options === undefined ? {} : { jsonContent: options })
        const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
        const result = yield* Structured.generate(Answer, request).pipe(Effect.provideService(ChatClient.ChatClient, chat))
        expect(result.value.summary).toBe("Summarise the refund policy for damaged items.")
        expect(result.attempts).toBe(1)
        const journal = yield* mock.journal
        expect(journal).toHaveLength(1)
        expect((journal[0]!.body as { response_format: { type: string } }).response_format.type).toBe("json_schema")
      }))
  }

  it.scopedLive("truncated: asked again up to maxRepairs, then StructuredOutputError with the last text", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ jsonContent: { truncate: true } })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const error = yield* Effect.flip(Structured.generate(Answer, request, { maxRepairs: 2 }).pipe(Effect.provideService(ChatClient.ChatClient, chat)))
      expect(error._tag).toBe("StructuredOutputError")
      if (error._tag === "StructuredOutputError") {
        expect(error.attempts).toBe(3)
        expect(error.issues).toContain("cut off")
      }
      const journal = yield* mock.journal
      expect(journal).toHaveLength(3)
      // each re-ask carries the bad answer and the reason
      const last = journal[2]!.body as { messages: Array<{ role: string; content: string }> }
      expect(last.messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant", "user"])
      expect(last.messages[2]!.content).toContain("cut off")
    }))
})

describe("Structured.generate (stub)", () => {
  it.effect("invalid, then valid: one re-ask quoting the decode error; usage summed", () =>
    Effect.gen(function* () {
      const stub = stubClient([
        completionWith('{"answer_id": "x", "summary": "s", "keywords": [], "sentiment": "furious", "score": 1}'),
        completionWith('{"answer_id": "x", "summary": "s", "keywords": [], "sentiment": "negative", "score": 1}')
      ])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const result = yield* Structured.generate(Answer, request, { mode: "json_object" }).pipe(Effect.provide(layer))
      expect(result.value.sentiment).toBe("negative")
      expect(result.attempts).toBe(2)
      expect(result.usage).toEqual({ prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 })
      const second = JSON.parse(stub.sent[1]!.body) as { messages: Array<{ role: string; content: string }>; response_format: unknown }
      expect(second.response_format).toEqual({ type: "json_object" })
      expect(second.messages[0]!.role).toBe("system") // the schema instruction in json_object mode
      expect(second.messages.at(-1)!.content).toContain("furious")
    }))

  it.effect("an answer that is not JSON at all is asked again, then reported", () =>
    Effect.gen(function* () {
      const stub = stubClient([completionWith("I cannot do that.")])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(Layer.provide(stub.layer))
      const error = yield* Effect.flip(Structured.generate(Answer, request, { maxRepairs: 1 }).pipe(Effect.provide(layer)))
      expect(error).toMatchObject({ _tag: "StructuredOutputError", rawText: "I cannot do that.", attempts: 2 })
      expect(stub.sent).toHaveLength(2)
    }))
})

describe("Structured.generate with a JsonParser pool", () => {
  it.scopedLive("an answer whose parse passes its deadline is asked again, like any answer that does not parse", () =>
    Effect.gen(function* () {
      // Trailing commas plus `undefined`: left to jsonrepair, which takes seconds on this much of it.
      const slow = "[" + Array.from({ length: 50_000 }, (_, i) => `{"id": ${i},}`).join(",") + ', {"x": undefined}]'
      const stub = stubClient([
        completionWith(slow),
        completionWith('{"answer_id": "x", "summary": "s", "keywords": [], "sentiment": "neutral", "score": 0.5}')
      ])
      const layer = ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1" }).pipe(
        Layer.provide(stub.layer),
        Layer.merge(JsonParser.layer({ inlineBelowBytes: 1024, maxThreads: 1, deadline: "200 millis", deadlinePerMb: "0 millis" }))
      )
      const result = yield* Structured.generate(Answer, request).pipe(Effect.provide(layer))
      expect(result.value.sentiment).toBe("neutral")
      expect(result.attempts).toBe(2)
      const second = JSON.parse(stub.sent[1]!.body) as { messages: Array<{ content: string }> }
      expect(second.messages.at(-1)!.content).toContain("deadline")
    }), 30_000)
})

describe("Structured.stream against MockServer", () => {
  it.scopedLive("partial values grow with the text, then the decoded value; fences and trailing commas are recovered", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ jsonContent: { fence: true, trailingComma: true }, streaming: { chunkChars: 6 } })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const events = yield* Structured.stream(Answer, { ...request, stream_options: { include_usage: true } }).pipe(
        Stream.runCollect,
        Effect.provideService(ChatClient.ChatClient, chat)
      )
      const all = [...events]
      const partials = all.filter((e) => e._tag === "Partial")
      const done = all.at(-1)!
      expect(partials.length).toBeGreaterThan(3)
      // each partial is the parse of a longer prefix of the same text
      for (let i = 1; i < partials.length; i++) expect(partials[i]!.text.startsWith(partials[i - 1]!.text)).toBe(true)
      expect(partials.some((p) => typeof p.value === "object" && p.value !== null && "summary" in p.value)).toBe(true)
      expect(done._tag).toBe("Done")
      if (done._tag === "Done") {
        expect(done.value.summary).toBe("Summarise the refund policy for damaged items.")
        expect(done.usage?.completion_tokens).toBeGreaterThan(0)
      }
      expect(yield* mock.journal).toHaveLength(1)
    }))

  it.scopedLive("a cut-off answer ends in StructuredOutputError after its partial values", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ jsonContent: { truncate: true } })
      const chat = Context.get(yield* Layer.build(ChatClient.layer({ baseUrl: mock.url })), ChatClient.ChatClient)
      const seen: Array<string> = []
      const error = yield* Structured.stream(Answer, request).pipe(
        Stream.runForEach((e) => Effect.sync(() => { seen.push(e._tag) })),
        Effect.flip,
        Effect.provideService(ChatClient.ChatClient, chat)
      )
      expect(error._tag).toBe("StructuredOutputError")
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every((tag) => tag === "Partial")).toBe(true)
    }))
})
