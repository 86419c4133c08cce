import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import { ChatSchema, RateLimit } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import * as Content from "../src/testing/internal/content.js"
import * as Limits from "../src/testing/internal/limits.js"
import { validatorFor } from "./helpers.js"

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) })
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, json: (() => { try { return JSON.parse(text) } catch { return undefined } })() }
  })

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content }], ...extra })
const validResponse = validatorFor("CreateChatCompletionResponse")
const validError = validatorFor("ErrorResponse")

describe("MockServer", () => {
  it.scopedLive("serves spec-valid completions, deterministic in the request, with usage counted from the text", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make()
      const a = yield* post(`${server.url}/chat/completions`, chat("Tell me about shipping"))
      const b = yield* post(`${server.url}/chat/completions`, chat("Tell me about shipping"))
      const c = yield* post(`${server.url}/chat/completions`, chat("Something else"))
      expect(a.status).toBe(200)
      expect(validResponse(a.json)).toBeUndefined()
      expect(a.json.choices[0].message.content).toBe(b.json.choices[0].message.content)
      expect(a.json.choices[0].message.content).not.toBe(c.json.choices[0].message.content)
      const usage = a.json.usage
      expect(usage.completion_tokens).toBe(Content.countTokens(a.json.choices[0].message.content))
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
      const n3 = yield* post(`${server.url}/chat/completions`, chat("three please", { n: 3, max_tokens: 5 }))
      expect(n3.json.choices).toHaveLength(3)
      expect(n3.json.choices.every((ch: { finish_reason: string }) => ch.finish_reason === "length")).toBe(true)
      expect(validResponse(n3.json)).toBeUndefined()
    }))

  it.scopedLive("serves embeddings and the model list in the spec's shapes", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make()
      const e = yield* post(`${server.url}/embeddings`, { model: "text-embedding-3-small", input: ["a", "b"], dimensions: 8 })
      expect(validatorFor("CreateEmbeddingResponse")(e.json)).toBeUndefined()
      expect(e.json.data).toHaveLength(2)
      expect(e.json.data[0].embedding).toHaveLength(8)
      const models = yield* Effect.promise(() => fetch(`${server.url}/models`).then((r) => r.json()))
      expect(validatorFor("ListModelsResponse")(models)).toBeUndefined()
    }))

  it.scopedLive("answers embeddings as base64 of little-endian float32s when asked, the same vectors as floats", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make()
      const body = { model: "text-embedding-3-small", input: ["a", "b"], dimensions: 8 }
      const floats = yield* post(`${server.url}/embeddings`, body)
      const base64 = yield* post(`${server.url}/embeddings`, { ...body, encoding_format: "base64" })
      expect(base64.json.usage).toEqual(floats.json.usage)
      for (const [i, item] of (base64.json.data as Array<{ embedding: string }>).entries()) {
        const bytes = Buffer.from(item.embedding, "base64")
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
        const decoded = Array.from({ length: bytes.length / 4 }, (_, k) => view.getFloat32(k * 4, true))
        expect(decoded).toEqual(floats.json.data[i].embedding.map(Math.fround))
      }
    }))

  it.scopedLive("answers 400 like OpenAI for invalid bodies, 404 for unknown paths, 405 for wrong methods", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make()
      const invalid = yield* post(`${server.url}/chat/completions`, { model: "m", messages: [] })
      expect(invalid.status).toBe(400)
      expect(validError(invalid.json)).toBeUndefined()
      expect(invalid.json.error.param).toMatch(/^messages/)
      const notJson = yield* post(`${server.url}/chat/completions`, "{not json")
      expect(notJson.status).toBe(400)
      expect(validError(notJson.json)).toBeUndefined()
      const unknown = yield* post(`${server.url}/completions`, chat("x"))
      expect(unknown.status).toBe(404)
      expect(validError(unknown.json)).toBeUndefined()
      const wrongMethod = yield* Effect.promise(() => fetch(`${server.url}/chat/completions`))
      expect(wrongMethod.status).toBe(405)
    }))

  it.scopedLive("with a key, any other bearer token gets 401", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ apiKey: "sk-right" })
      expect((yield* post(`${server.url}/chat/completions`, chat("x"))).status).toBe(401)
      expect((yield* post(`${server.url}/chat/completions`, chat("x"), { authorization: "Bearer sk-wrong" })).status).toBe(401)
      const ok = yield* post(`${server.url}/chat/completions`, chat("x"), { authorization: "Bearer sk-right" })
      expect(ok.status).toBe(200)
    }))

  it.scopedLive("plays a script in order, then answers normally; counts what it sent", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ script: [{ type: "rate_limit", retryAfterSeconds: 2, retryAfterMillis: 1500 }, "ok", { type: "server_error", status: 500 }, { type: "bad_request" }] })
      const statuses: Array<number> = []
      for (let i = 0; i < 5; i++) statuses.push((yield* post(`${server.url}/chat/completions`, chat(`q${i}`))).status)
      expect(statuses).toEqual([429, 200, 500, 400, 200])
      const journal = yield* server.journal
      expect(journal.map((e) => e.fault)).toEqual(["rate_limit", undefined, "server_error", "bad_request", undefined])
      const stats = yield* server.stats
      expect(stats).toMatchObject({ requests: 5, byStatus: { 200: 2, 429: 1, 500: 1, 400: 1 }, faults: { rate_limit: 1, server_error: 1, bad_request: 1 } })
      yield* server.reset
      expect((yield* server.stats).requests).toBe(0)
    }))

  it.scopedLive("a 429 carries retry-after and retry-after-ms and a spec-valid error body", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ script: [{ type: "rate_limit", retryAfterSeconds: 2, retryAfterMillis: 1500 }] })
      const res = yield* post(`${server.url}/chat/completions`, chat("x"))
      expect(res.headers.get("retry-after")).toBe("2")
      expect(res.headers.get("retry-after-ms")).toBe("1500")
      expect(validError(res.json)).toBeUndefined()
    }))

  it.scopedLive("random faults follow the seed: same seed, same sequence; the rate is respected", () =>
    Effect.gen(function* () {
      const run = (seed: number) =>
        Effect.scoped(Effect.gen(function* () {
          const server = yield* MockServer.make({ seed, faultRate: 0.3, faults: [{ type: "server_error" }, { type: "bad_request" }] })
          const out: Array<number> = []
          for (let i = 0; i < 200; i++) out.push((yield* post(`${server.url}/chat/completions`, chat("x"))).status)
          return out
        }))
      const a = yield* run(7)
      expect(yield* run(7)).toEqual(a)
      expect(yield* run(8)).not.toEqual(a)
      const faults = a.filter((s) => s !== 200).length
      expect(faults).toBeGreaterThan(30)
      expect(faults).toBeLessThan(90)
    }))

  it.scopedLive("JSON content mode writes the defects models produce", () =>
    Effect.gen(function* () {
      const content = (options: MockServer.JsonContentOptions | undefined, extra: Record<string, unknown> = {}) =>
        Effect.scoped(Effect.gen(function* () {
          const server = yield* MockServer.make(options === undefined ? {} : { jsonContent: options })
          const res = yield* post(`${server.url}/chat/completions`, chat("Summarise the refund policy for damaged items", extra))
          return res.json.choices[0].message.content as string
        }))
      const clean = yield* content(undefined, { response_format: { type: "json_object" } })
      const value = JSON.parse(clean)
      expect(value.summary).toBe("Summarise the refund policy for damaged items.")
      expect(yield* content({ fence: true })).toMatch(/^```json\n\{[\s\S]*\}\n```$/)
      const prose = yield* content({ prose: true })
      expect(prose.startsWith("Here is the JSON")).toBe(true)
      expect(JSON.parse(prose.slice(prose.indexOf("{"), prose.lastIndexOf("}") + 1))).toEqual(value)
      const trailing = yield* content({ trailingComma: true })
      expect(() => JSON.parse(trailing)).toThrow()
      expect(JSON.parse(trailing.replace(/,(\s*[}\]])/g, "$1"))).toEqual(value)
      const truncated = yield* content({ truncate: true })
      expect(clean.startsWith(truncated)).toBe(true)
      expect(truncated.length).toBeLessThan(clean.length)
    }))

  it.scopedLive("enforces rpm like OpenAI: x-ratelimit-* headers on every answer, 429 with retry-after when over", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ rpm: 3 })
      const answers = []
      for (let i = 0; i < 4; i++) answers.push(yield* post(`${server.url}/chat/completions`, chat(`q${i}`)))
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429])
      expect(answers.map((a) => a.headers.get("x-ratelimit-remaining-requests"))).toEqual(["2", "1", "0", "0"])
      expect(answers[0]!.headers.get("x-ratelimit-limit-requests")).toBe("3")
      expect(answers[0]!.headers.get("x-ratelimit-reset-requests")).toMatch(/^\d+(\.\d+)?(ms|s)$/)
      const refused = answers[3]!
      expect(Number(refused.headers.get("retry-after-ms"))).toBeGreaterThan(15_000)
      expect(refused.json.error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" })
      expect(validError(refused.json)).toBeUndefined()
      expect((yield* server.stats).rateLimited).toBe(1)
    }))

  it.scopedLive("a shorter window refills rpm over it instead of a minute, and says so in its headers", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ rpm: 2, window: "2 seconds" })
      const answers = []
      for (let i = 0; i < 3; i++) answers.push(yield* post(`${server.url}/chat/completions`, chat(`q${i}`)))
      expect(answers.map((a) => a.status)).toEqual([200, 200, 429])
      // One request's worth of a 2-request bucket refills in 1 s (a minute would take 30 s).
      const wait = Number(answers[2]!.headers.get("retry-after-ms"))
      expect(wait).toBeGreaterThan(0)
      expect(wait).toBeLessThanOrEqual(1000)
      expect(RateLimit.parseResetDuration(answers[1]!.headers.get("x-ratelimit-reset-requests") ?? undefined)).toBeLessThanOrEqual(2000)
    }))

  it.scopedLive("enforces tpm on prompt tokens plus max_tokens", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ tpm: 100 })
      const first = yield* post(`${server.url}/chat/completions`, chat("hello", { max_tokens: 60 }))
      expect(first.status).toBe(200)
      const used = 100 - Number(first.headers.get("x-ratelimit-remaining-tokens"))
      expect(used).toBe(first.json.usage.prompt_tokens + 60)
      const second = yield* post(`${server.url}/chat/completions`, chat("hello", { max_tokens: 60 }))
      expect(second.status).toBe(429)
      expect(second.json.error.type).toBe("tokens")
    }))

  it("a json_schema request gets content that decodes with the Schema it came from", () => {
    const Item = Schema.Struct({ sku: Schema.String, qty: Schema.Int, gift: Schema.Boolean })
    const cases: ReadonlyArray<Schema.Schema<any, any>> = [
      Schema.Struct({ summary: Schema.String, keyPoints: Schema.Array(Schema.String) }),
      Schema.Struct({ status: Schema.Literal("open", "closed"), score: Schema.Number, note: Schema.NullOr(Schema.String) }),
      Schema.Struct({ items: Schema.Array(Item).pipe(Schema.minItems(1)), total: Schema.optional(Schema.Number) }),
      Schema.Struct({ nested: Schema.Struct({ deeper: Schema.Array(Schema.Union(Schema.Number, Schema.String)) }) }),
      Schema.Array(Item.annotations({ identifier: "Item" }))
    ]
    for (const schema of cases) {
      const value = Content.valueForSchema(JSONSchema.make(schema), "what is the status of my order of red shoes", 12345)
      expect(Schema.decodeUnknownEither(schema)(value)._tag).toBe("Right")
    }
  })

  it("summaries are the prompt's first two sentences, other strings its next ones; documents under [docId] lines are answered from, cited", () => {
    const article = "Document kb-01:\n\nRefunds (EU store)\n\nRefunds are paid in five days. They go back to the card. Shipping is refunded too. Call us if not."
    const value = Content.valueForSchema(JSONSchema.make(Schema.Struct({ summary: Schema.String, keyPoints: Schema.Array(Schema.String) })), article, 7) as { summary: string; keyPoints: Array<string> }
    expect(value.summary).toBe("Refunds are paid in five days. They go back to the card.")
    expect(value.keyPoints).toEqual(["Shipping is refunded too.", "Call us if not.", "Shipping is refunded too."])
    expect(Content.summaryOf("where is my order 42")).toBe("Where is my order 42.")
    const system = "Answer from the documents.\n\nDocuments:\n\n[kb-02]\nShipping takes three days. Refunds take five days.\n\n[kb-01]\nRefunds take two days."
    expect(Content.answerFromDocuments([{ role: "system", content: system }, { role: "user", content: "How long do refunds take?" }], "How long do refunds take?"))
      .toBe("Refunds take five days [kb-02].")
    expect(Content.answerFromDocuments([{ role: "user", content: "hi" }], "hi")).toBeUndefined()
  })

  it("formats reset durations as OpenAI does", () => {
    expect(Limits.formatReset(20)).toBe("20ms")
    expect(Limits.formatReset(1000)).toBe("1s")
    expect(Limits.formatReset(1500)).toBe("1.5s")
    expect(Limits.formatReset(360_000)).toBe("6m0s")
  })

  it.scopedLive("keeps the newest journalLimit entries", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ journalLimit: 3 })
      for (let i = 0; i < 10; i++) yield* post(`${server.url}/chat/completions`, chat(`q${i}`))
      const journal = yield* server.journal
      expect(journal.map((e) => e.seq)).toEqual([8, 9, 10])
    }))

  it.scopedLive("a port already taken gives MockServerError", () =>
    Effect.gen(function* () {
      const first = yield* MockServer.make()
      const error = yield* Effect.flip(Effect.scoped(MockServer.make({ port: first.port })))
      expect(error._tag).toBe("MockServerError")
      expect(error.message).toContain("Pick another port")
    }))

  it("latency samplers: fixed, uniform within its bounds, log-normal around its median (seeded)", () => {
    const fixed = Content.latencySampler("50 millis", Content.mulberry32(1))
    expect([fixed(), fixed()]).toEqual([50, 50])
    const uniform = Content.latencySampler({ uniform: ["20 millis", "80 millis"] }, Content.mulberry32(2))
    const u = Array.from({ length: 2000 }, uniform)
    expect(Math.min(...u)).toBeGreaterThanOrEqual(20)
    expect(Math.max(...u)).toBeLessThanOrEqual(80)
    const logNormal = Content.latencySampler({ logNormal: { median: "50 millis", sigma: 0.5 } }, Content.mulberry32(3))
    const l = Array.from({ length: 4000 }, logNormal).sort((a, b) => a - b)
    expect(l[2000]!).toBeGreaterThan(45)
    expect(l[2000]!).toBeLessThan(55)
    expect(l[3990]!).toBeGreaterThan(100) // a long right tail
    const again = Content.latencySampler({ logNormal: { median: "50 millis", sigma: 0.5 } }, Content.mulberry32(3))
    expect(Array.from({ length: 4000 }, again).sort((a, b) => a - b)).toEqual(l)
  })

  it("decodes its own replies with Shepherd's schema", () => {
    const reply = Content.completion({ model: "m", messages: [{ role: "user", content: "x" }] }, undefined, 1)
    expect(validResponse(JSON.parse(JSON.stringify(reply)))).toBeUndefined()
    expect(ChatSchema.ChatCompletion.make(reply)).toBeDefined()
  })
})
