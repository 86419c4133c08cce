/** Rag: document analysis and answers, against MockServer; ranking as a pure function. */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { ChatClient, Rag } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { validatorFor } from "./helpers.js"

const docs: Array<Rag.Document> = Array.from({ length: 20 }, (_, i) => ({
  docId: `doc-${i}`,
  content: i === 7
    ? "Refunds for damaged items are paid within five working days of the return reaching the warehouse."
    : `Store notice ${i}: opening hours, parking and gift cards for branch number ${i}.`
}))

const client = (mock: MockServer.Service) =>
  Effect.map(Layer.build(ChatClient.layer({ baseUrl: mock.url, retry: { maxRetries: 0 } })), (ctx) => Context.get(ctx, ChatClient.ChatClient))

describe("Rag.analyzeDocuments against MockServer", () => {
  it.scopedLive("every document gets its analysis in input order; a failing one carries its error and the rest succeed", () =>
    Effect.gen(function* () {
      // Requests 3 and 9 are refused (400); every other answer is schema-shaped JSON.
      const script = Array.from({ length: 10 }, (_, i) => (i === 2 || i === 8 ? { type: "bad_request" as const } : "ok" as const))
      const mock = yield* MockServer.make({ script })
      const chat = yield* client(mock)
      const analyses = yield* Rag.analyzeDocuments(docs, { model: "gpt-4.1-mini", concurrency: 1 }).pipe(Effect.provideService(ChatClient.ChatClient, chat))
      expect(analyses.map((a) => a.docId)).toEqual(docs.map((d) => d.docId))
      const failed = analyses.filter((a) => a.error !== undefined)
      expect(failed.map((a) => a.docId)).toEqual(["doc-2", "doc-8"])
      for (const a of failed) expect(a.error).toMatchObject({ _tag: "ApiError", status: 400 })
      for (const a of analyses.filter((x) => x.error === undefined)) {
        expect(a.summary.length).toBeGreaterThan(0)
        expect(a.keyPoints.length).toBeGreaterThan(0)
        expect(a.attempts).toBe(1)
        expect(Option.getOrThrow(a.costMicroUsd)).toBeGreaterThan(0)
      }
      // The doc-7 request carried the document and asked for the analysis schema.
      const journal = yield* mock.journal
      const sent = journal.map((e) => e.body as { messages: Array<{ content: string }>; response_format: { json_schema: { name: string } } })
      expect(sent.some((b) => b.messages[1]!.content.includes("Refunds for damaged items"))).toBe(true)
      for (const body of sent) {
        expect(validatorFor("CreateChatCompletionRequest")(body)).toBeUndefined()
        expect(body.response_format.json_schema.name).toBe("document_analysis")
      }
    }))

  it.scopedLive("almost-JSON answers (fenced, in prose, trailing commas) are recovered without re-asking", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ jsonContent: { fence: true, prose: true, trailingComma: true } })
      const chat = yield* client(mock)
      const analyses = yield* Rag.analyzeDocuments(docs.slice(0, 6), { model: "gpt-4.1-mini", concurrency: 3 }).pipe(Effect.provideService(ChatClient.ChatClient, chat))
      expect(analyses.every((a) => a.error === undefined && a.keyPoints.length > 0)).toBe(true)
      expect(yield* mock.journal).toHaveLength(6)
    }))

  it.scopedLive("a truncated answer is re-asked, then reported with the tokens it cost", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ jsonContent: { truncate: true } })
      const chat = yield* client(mock)
      const [analysis] = yield* Rag.analyzeDocuments(docs.slice(0, 1), { model: "gpt-4.1-mini", structured: { maxRepairs: 1 } }).pipe(
        Effect.provideService(ChatClient.ChatClient, chat)
      )
      expect(analysis!.error).toMatchObject({ _tag: "StructuredOutputError", attempts: 2 })
      expect(analysis!.usage.promptTokens).toBeGreaterThan(0)
      expect(Option.getOrThrow(analysis!.costMicroUsd)).toBeGreaterThan(0)
    }))

  it.scopedLive("analyze streams analyses as they complete", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const chat = yield* client(mock)
      const seen = yield* Rag.analyze(docs, { model: "gpt-4.1-mini", concurrency: 4 }).pipe(Stream.runCollect, Effect.provideService(ChatClient.ChatClient, chat))
      expect([...seen].map((a) => a.docId).sort()).toEqual(docs.map((d) => d.docId).sort())
    }))
})

describe("Rag.answer", () => {
  it.scopedLive("puts the best-matching documents in the context, best first, and returns the answer with its cost", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const chat = yield* client(mock)
      const result = yield* Rag.answer("How fast are refunds for damaged items paid?", docs, { model: "gpt-4.1-mini", topK: 3 }).pipe(
        Effect.provideService(ChatClient.ChatClient, chat)
      )
      expect(result.sources[0]!.docId).toBe("doc-7")
      expect(result.sources.length).toBeLessThanOrEqual(3)
      // The mock's "model" answers from the first document it was given, citing it.
      expect(result.answer).toMatch(/^Refunds for damaged items .*\[doc-7\]\.$/)
      expect(Option.getOrThrow(result.costMicroUsd)).toBeGreaterThan(0)
      const [entry] = yield* mock.journal
      const system = (entry!.body as { messages: Array<{ content: string }> }).messages[0]!.content
      expect(system).toContain("[doc-7]\nRefunds for damaged items")
      expect(system.indexOf("[doc-")).toBe(system.indexOf("[doc-7]")) // best first
    }))
})

describe("Rag.rank", () => {
  it("a document with every query term outranks those with fewer; unrelated ones are left out", () => {
    const ranked = Rag.rank("refunds damaged items", docs, 5)
    expect(ranked[0]!.docId).toBe("doc-7")
    expect(ranked.every((m) => m.score > 0)).toBe(true)
    expect(Rag.rank("zebra", docs, 5)).toEqual([])
    expect(Rag.rank("", docs, 5)).toEqual([])
  })

  it.prop("at most topK matches, sorted best first, each a given document", [
    FastCheck.array(FastCheck.string({ maxLength: 40 }), { maxLength: 12 }),
    FastCheck.string({ maxLength: 20 }),
    FastCheck.integer({ min: 0, max: 6 })
  ], ([contents, query, topK]) => {
    const given = contents.map((content, i) => ({ docId: `d${i}`, content }))
    const ranked = Rag.rank(query, given, topK)
    expect(ranked.length).toBeLessThanOrEqual(topK)
    for (let i = 1; i < ranked.length; i++) expect(ranked[i - 1]!.score).toBeGreaterThanOrEqual(ranked[i]!.score)
    for (const m of ranked) expect(given.some((d) => d.docId === m.docId)).toBe(true)
  })
})
