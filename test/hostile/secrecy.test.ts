/**
 * Issue 13 B.9 (the JSON depth limit cannot be bypassed) and C.10 (no string a server sends carries
 * the key anywhere Shepherd stores it), and issue 14 §6 (a failed request's output line carries the
 * server's own error object; streamed partial values hold no half-written key).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { ChatClient, Json, JsonParser, Metrics, Structured } from "../../src/index.js"
import { readOut, runToEnd, tmp, writeInput } from "../cliHelpers.js"
import { batchValidatorFor, recordingTracer, validatorFor } from "../helpers.js"
import { makeClientScrub, makeScrub } from "../../src/internal/classify.js"
import * as Modes from "./modes/secrecy.js"
import * as Hostile from "./server.js"

const KEY = "sk-proj-secrecy_Test-9f8e7d6c5b4a3210"
const FORMS = Modes.formsOf(KEY)

/** `text` holds none of the key's forms (exact, JSON-escaped, percent-encoded). */
const expectNoKey = (what: string, text: string) => {
  for (const form of FORMS) expect(text.includes(form), `${what} holds the key (${form.slice(0, 12)}…)`).toBe(false)
}


const ask = (content: string) => ({ model: "gpt-4.1-mini", messages: [{ role: "user" as const, content }] })

/** The server's error object as Shepherd keeps it: the key replaced in every field, whatever its form. */
const scrubbedEcho = { message: "Incorrect API key provided: [REDACTED].", type: "[REDACTED]", code: "[REDACTED]", param: "[REDACTED]" }

describe("13.10 the key a server echoes is stored nowhere", () => {
  it("13.10 the scrubber finds the key written as is, JSON-escaped (any mix) or percent-encoded, and leaves other text alone", () => {
    const scrub = makeScrub(KEY)
    const partlyEscaped = [...KEY].map((c, i) => (i % 3 === 0 ? "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0").toUpperCase() : c)).join("")
    for (const form of [...FORMS, partlyEscaped, encodeURIComponent(KEY)]) {
      const text = `{"message": "key ${form} here", "other": "50% off, caf\\u00e9"}`
      const clean = scrub(text)
      expect(clean).toBe(`{"message": "key [REDACTED] here", "other": "50% off, caf\\u00e9"}`)
      expect(JSON.stringify(JSON.parse(clean))).not.toContain(KEY)
    }
    // Escapes that spell no key are kept as written.
    expect(scrub(`{"a": "\\u0073k-%70roj"}`)).toBe(`{"a": "\\u0073k-%70roj"}`)
  })

  it("13.10 a key given as a credential header (Azure's api-key, an authorization with its scheme) is scrubbed as the API key is; other headers are not", () => {
    const scrub = makeClientScrub(undefined, { "api-key": "azure-secret-1234", Authorization: "Bearer proxy-token-5678", "OpenAI-Organization": "org-visible" })
    expect(scrub("a azure-secret-1234 b proxy-token-5678 c org-visible")).toBe("a [REDACTED] b [REDACTED] c org-visible")
  })

  it("13.10 a placeholder key under 4 characters (\"x\", as local servers are given) is not scrubbed: answers keep their text; from 4 characters it is", () => {
    expect(makeScrub("x")(`{"index": 0, "text": "max"}`)).toBe(`{"index": 0, "text": "max"}`)
    expect(makeScrub("abc")("abcdef")).toBe("abcdef")
    expect(makeScrub("abcd")("xabcdx")).toBe("x[REDACTED]x")
  })

  it.scopedLive("13.10 create, embed and stream against a server echoing the key into every field and header: no error, value, span, log or metric holds it", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.echoKey)
      const chat = Context.get(
        yield* Layer.build(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY), retry: { maxRetries: 0 } })),
        ChatClient.ChatClient
      )
      const { spans, tracer } = recordingTracer()
      const logs: Array<string> = []
      const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => { logs.push(JSON.stringify(message)) }))
      const observed = <A, E>(effect: Effect.Effect<A, E>) => effect.pipe(Effect.withTracer(tracer), Effect.provide(logger))

      const ok = yield* observed(chat.createWithMetadata(ask("hello")))
      const embedded = yield* observed(chat.embedWithMetadata({ model: "text-embedding-3-small", input: "hello" }))
      const failures = [
        yield* observed(Effect.flip(chat.create(ask("fail400")))),
        yield* observed(Effect.flip(chat.create(ask("fail429")))),
        yield* observed(Effect.flip(chat.create(ask("fail502html")))),
        yield* observed(Effect.flip(chat.embed({ model: "text-embedding-3-small", input: "fail400" })))
      ]
      const chunks: Array<unknown> = []
      const streamed = yield* observed(Effect.either(Stream.runForEach(chat.stream(ask("hello")), (chunk) => Effect.sync(() => chunks.push(chunk)))))
      expect(server.requests.length).toBe(7)
      for (const request of server.requests) expect(request.headers["authorization"]).toBe(`Bearer ${KEY}`)

      // What was echoed is there, as [REDACTED]: the server's words kept, the key taken out.
      expect(ok.requestId).toBe("[REDACTED]")
      expect(ok.completion.id).toBe("[REDACTED]")
      expect(ok.completion.model).toBe("[REDACTED]")
      expect(ok.headers["x-echo"]).toBe("prefix [REDACTED] suffix")
      expect(embedded.embeddings.model).toBe("[REDACTED]")
      const [badRequest, rateLimited, badGateway, badEmbedding] = failures
      expect(badRequest).toMatchObject({ _tag: "ApiError", status: 400, type: "[REDACTED]", code: "[REDACTED]", param: "[REDACTED]", requestId: "[REDACTED]", serverError: scrubbedEcho })
      expect(rateLimited).toMatchObject({ _tag: "RateLimitError", code: "[REDACTED]", requestId: "[REDACTED]", serverError: scrubbedEcho })
      expect(badGateway).toMatchObject({ _tag: "ApiError", status: 502, requestId: "[REDACTED]" })
      expect(badEmbedding).toMatchObject({ _tag: "ApiError", status: 400, serverError: scrubbedEcho })
      expect(chunks).toHaveLength(1)
      expect(Either.isLeft(streamed) && streamed.left).toMatchObject({ _tag: "ApiError", requestId: "[REDACTED]", serverError: scrubbedEcho })

      expectNoKey("a value", JSON.stringify([ok, embedded, chunks]))
      for (const error of [...failures, Either.isLeft(streamed) ? streamed.left : undefined]) {
        expectNoKey("an error", JSON.stringify(error))
        expectNoKey("an error's message", String((error as Error).message))
        expectNoKey("an error as text", String(error))
      }
      const shepherdSpans = spans.filter((s) => s.name.startsWith("shepherd."))
      expect(shepherdSpans.length).toBe(7)
      expect(shepherdSpans.some((s) => s.attributes.get("shepherd.request_id") === "[REDACTED]")).toBe(true)
      expectNoKey("a span", JSON.stringify(
        shepherdSpans.map((s) => ({ name: s.name, attributes: [...s.attributes], status: s.status })),
        (_, value: unknown) => (typeof value === "bigint" ? String(value) : value)
      ))
      expectNoKey("a log line", logs.join("\n"))
      expectNoKey("a metric", JSON.stringify(yield* Metrics.snapshot))
    }))

  it.scopedLive("13.10 shepherd run against a server echoing the key: the output, summary and metrics files and stderr never hold it", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.echoKey)
      const dir = tmp()
      const line = (id: string, url: string, body: unknown) => JSON.stringify({ custom_id: id, method: "POST", url, body })
      const input = writeInput(dir, [
        line("ok", "/v1/chat/completions", ask("hello")),
        line("bad", "/v1/chat/completions", ask("fail400")),
        line("limited", "/v1/chat/completions", ask("fail429")),
        line("gateway", "/v1/chat/completions", ask("fail502html")),
        line("embedded", "/v1/embeddings", { model: "text-embedding-3-small", input: "hello" }),
        line("badEmbedding", "/v1/embeddings", { model: "text-embedding-3-small", input: "fail400" })
      ])
      const out = Path.join(dir, "out.jsonl")
      const summary = Path.join(dir, "summary.json")
      const metrics = Path.join(dir, "metrics.json")
      const ended = yield* runToEnd(
        [input, "--out", out, "--base-url", server.baseUrl, "--max-retries", "0", "--summary", summary, "--metrics", metrics, "--no-progress"],
        { OPENAI_API_KEY: KEY }
      )
      // Every line written (429 and 502 are left for a rerun; the exit status is not the point here).
      expect([0, 1]).toContain(ended.code)
      expect(server.requests.length).toBe(6)
      const written = new Map(readOut(out).map((l) => [l.custom_id, l]))
      expect(written.size).toBe(6)
      expect(written.get("ok")!.response).toMatchObject({ request_id: "[REDACTED]", body: { id: "[REDACTED]", model: "[REDACTED]" } })
      expect(written.get("bad")!.response).toMatchObject({ status_code: 400, request_id: "[REDACTED]", body: { error: scrubbedEcho } })
      expect(written.get("limited")!.response).toMatchObject({ status_code: 429, body: { error: scrubbedEcho } })
      for (const [what, path] of [["the output file", out], ["the summary file", summary], ["the metrics file", metrics]] as const) {
        expectNoKey(what, Fs.readFileSync(path, "utf8"))
      }
      expectNoKey("stderr", ended.stderr)
    }))
})

describe("14.6 a failed request's output line", () => {
  it.scopedLive("14.6 carries the server's error object in its own words (message, type, code, param), as OpenAI's batch output does", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve(Modes.echoKeyOrHonest)
      const dir = tmp()
      const input = writeInput(dir, [JSON.stringify({ custom_id: "missing", method: "POST", url: "/v1/chat/completions", body: ask("honest404") })])
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", server.baseUrl, "--no-progress"], { OPENAI_API_KEY: KEY })
      expect(ended.code).toBe(0)
      const [line] = readOut(out)
      expect(batchValidatorFor("BatchRequestOutput")(line)).toBeUndefined()
      expect(line!.response).toEqual({ status_code: 404, request_id: "req_honest", body: { error: Modes.honestError } })
      expect(validatorFor("ErrorResponse")(line!.response!.body)).toBeUndefined()
    }))
})

describe("14.6 Structured.stream partial values", () => {
  const Answer = Schema.Struct({ summary: Schema.String, keywords: Schema.Array(Schema.String), details: Schema.Struct({ score: Schema.Number, label: Schema.String }) })
  const final = { summary: "a short one", keywords: ["alpha", "beta"], details: { score: 3, label: "ok" } }

  /** Every object key in `value`, at any depth, as `path.key`. */
  const keysOf = (value: unknown, path = ""): Array<string> =>
    typeof value !== "object" || value === null
      ? []
      : Array.isArray(value)
      ? value.flatMap((item) => keysOf(item, `${path}[]`))
      : Object.entries(value).flatMap(([key, item]) => [`${path}.${key}`, ...keysOf(item, `${path}.${key}`)])

  it.scopedLive("14.6 never hold a key that is still being written: a cut key is left out until it is complete", () =>
    Effect.gen(function* () {
      // One character per chunk: the answer is cut inside every key, before every colon and after it.
      const server = yield* Hostile.serve(Modes.streamInPieces(JSON.stringify(final, null, 1), 1))
      const events = yield* Structured.stream(Answer, ask("answer")).pipe(
        Stream.runCollect,
        Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY) }))
      )
      const all = [...events]
      const partials = all.filter((e) => e._tag === "Partial")
      expect(all.at(-1)).toMatchObject({ _tag: "Done", value: final })
      const complete = new Set(keysOf(final))
      expect(partials.length).toBeGreaterThan(10)
      for (const partial of partials) {
        for (const key of keysOf(partial.value)) expect(complete.has(key), `partial ${JSON.stringify(partial.value)} holds ${key}`).toBe(true)
      }
      // The keys still appear as soon as their values begin.
      expect(partials.some((p) => JSON.stringify(p.value) === JSON.stringify({ summary: "a" }))).toBe(true)
      expect(partials.some((p) => JSON.stringify(p.value) === JSON.stringify({ ...final, details: { score: 3 } }))).toBe(true)
    }))
})

describe("14.6 Json.parsePrefixEither", () => {
  /** Every object key in `value` with its path (array indices kept). */
  const paths = (value: unknown, path = ""): Array<string> =>
    typeof value !== "object" || value === null
      ? []
      : Object.entries(value).flatMap(([key, item]) => {
        const here = `${path}${Array.isArray(value) ? `[${key}]` : `.${JSON.stringify(key)}`}`
        return Array.isArray(value) ? paths(item, here) : [here, ...paths(item, here)]
      })

  it.prop(
    "14.6 property: every prefix of a document gives only keys the whole document has, at the same place",
    [FastCheck.jsonValue({ maxDepth: 3 }), FastCheck.boolean()],
    ([document, pretty]) => {
      const text = JSON.stringify(document, null, pretty ? 1 : undefined)
      const complete = new Set(paths(document))
      for (let end = 1; end <= Math.min(text.length, 400); end++) {
        const prefix = Json.parsePrefixEither(text.slice(0, end))
        if (Either.isLeft(prefix)) continue
        for (const path of paths(prefix.right.value)) expect(complete.has(path), `${text.slice(0, end)} gives ${path}`).toBe(true)
      }
    },
    { fastCheck: { numRuns: 100 } }
  )
})

describe("13.9 the JSON depth limit", () => {
  const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
  /** The input of the issue: a single-quoted string holding `"` on each side of the deep value. */
  const disguised = (depth: number) => `{'a': '"', 'b': ${nested(depth)}, 'c': '"'}`

  it("13.9 a double quote inside a single-quoted string does not hide 5,000 levels: too_deep, inline", () => {
    const text = disguised(5000)
    expect(text.length).toBeLessThan(16_384)
    const result = Json.parseEither(text)
    expect(Either.isLeft(result) && result.left.reason).toBe("too_deep")
  })

  it.scopedLive("13.9 through JsonParser: too_deep inline and in the pool (20,000 deep), not worker_failed", () =>
    Effect.gen(function* () {
      const parserWith = (options: Partial<JsonParser.Options>) =>
        Effect.map(Layer.build(JsonParser.layer(options)), (ctx) => Context.get(ctx, JsonParser.JsonParser))
      // A long deadline: a worker starting on a busy machine is not the point here.
      const inline = yield* parserWith({ maxThreads: 1 })
      const pooled = yield* parserWith({ inlineBelowBytes: 0, maxThreads: 1, deadline: "1 minute" })
      expect((yield* Effect.flip(inline.parse(disguised(5000)))).reason).toBe("too_deep")
      expect((yield* Effect.flip(pooled.parse(disguised(5000)))).reason).toBe("too_deep")
      expect((yield* Effect.flip(pooled.parse(disguised(20_000)))).reason).toBe("too_deep")
      // The pool still serves.
      expect((yield* pooled.parse(`{'a': '"', 'b': ${nested(10)}}`)).value).toEqual({ a: '"', b: JSON.parse(nested(10)) })
    }))

  it("13.9 nesting a stray apostrophe hides from the scan is caught on the value", () => {
    for (const depth of [50, 20_000]) {
      const result = Json.parseEither(`[ don't ${nested(depth)} ]`, { maxDepth: 40 })
      expect(Either.isLeft(result) && result.left.reason).toBe("too_deep")
    }
  })

  const LIMIT = 12
  const siblings = [[`'"'`, '"'], [`"'"`, "'"], [`'[{'`, "[{"], [`"]}"`, "]}"], [`“"”`, '"'], ["True", true], ["None", null]] as const
  const keys = [[`"k"`, "k"], [`'k'`, "k"], ["k", "k"]] as const
  const level = FastCheck.record({
    array: FastCheck.boolean(),
    sibling: FastCheck.nat(siblings.length - 1),
    key: FastCheck.nat(keys.length - 1),
    trailingComma: FastCheck.boolean(),
    comment: FastCheck.boolean()
  })
  type Level = typeof level extends FastCheck.Arbitrary<infer A> ? A : never
  /** Lenient JSON nested `levels.length` deep (a sibling before the child at each level), cut before its closers or not, and its value. */
  const build = (levels: ReadonlyArray<Level>, cut: boolean) => {
    let value: unknown = 1
    for (let i = levels.length - 1; i >= 0; i--) {
      const l = levels[i]!
      value = l.array ? [siblings[l.sibling][1], value] : { s: siblings[l.sibling][1], [keys[l.key][1]]: value }
    }
    const opens = levels.map((l) => {
      const comment = l.comment ? `/* it's "x" [ */ ` : ""
      return l.array ? `[${comment}${siblings[l.sibling][0]}, ` : `{${comment}'s': ${siblings[l.sibling][0]}, ${keys[l.key][0]}: `
    })
    const closes = levels.map((l) => `${l.trailingComma ? "," : ""}${l.array ? "]" : "}"}`).reverse()
    return { text: opens.join("") + "1" + (cut ? "" : closes.join("")), value }
  }
  const wrappers: ReadonlyArray<(text: string, cut: boolean) => string> = [
    (text) => text,
    (text, cut) => "```json\n" + text + (cut ? "" : "\n```"),
    (text) => `// it's "quoted"\n` + text,
    (text, cut) => "Here's the answer: " + text + (cut ? "" : " That's all."),
    (text, cut) => `I said "yes", and it's: ` + text + (cut ? "" : ` (that's "it")`)
  ]

  it.prop(
    "13.9 property: no value deeper than maxDepth leaves Json.parse, whatever the quoting, comments, wrapping or truncation",
    [FastCheck.array(level, { minLength: 1, maxLength: 2 * LIMIT, size: "max" }), FastCheck.nat(wrappers.length - 1), FastCheck.boolean()],
    ([levels, wrapper, cut]) => {
      const { text, value } = build(levels, cut)
      const result = Json.parseEither(wrappers[wrapper]!(text, cut), { maxDepth: LIMIT })
      if (levels.length > LIMIT) expect(Either.isLeft(result) && result.left.reason).toBe("too_deep")
      else expect(Either.isRight(result) && result.right.value).toEqual(value)
    },
    { fastCheck: { numRuns: 500 } }
  )
})
