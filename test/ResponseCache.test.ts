/** The response cache as a pipeline stage, over a stub HttpClient (TestClock) and over the real MockServer. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Batch, Budget, ChatClient, Embeddings, Metrics, ResponseCache, Structured } from "../src/index.js"
import type { ChatSchema } from "../src/index.js"
import * as Entry from "../src/internal/cache/entry.js"
import * as Key from "../src/internal/cache/key.js"
import * as CacheStage from "../src/internal/cache/stage.js"
import type * as Pipeline from "../src/internal/pipeline.js"
import * as MemoryStore from "../src/internal/cache/memory.js"
import { MockServer } from "../src/testing/index.js"
import { completion, completionReply, errorBody, type StubReply, stubClient } from "./helpers.js"
import { callFor, scriptedEndpoint } from "./pipelineHelpers.js"
import { admin, redisAvailable, startRedisWith } from "./redisServer.js"

const KEY = "sk-cache-test-0f1e2d3c4b5a69788796a5b4"
const request = (content = "hi", extra: Partial<ChatSchema.ChatCompletionRequest> = {}): ChatSchema.ChatCompletionRequest => ({
  model: "gpt-4.1-mini",
  messages: [{ role: "user", content }],
  max_tokens: 50,
  ...extra
})
const tmp = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-cache-"))

/** A client over `stub` with `cache` beside it (found in the call's context, as Budget is). */
const clientWith = <O>(stub: ReturnType<typeof stubClient>, cache: Layer.Layer<O, unknown>) =>
  Layer.merge(
    ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", apiKey: undefined, retry: { maxRetries: 0 } }).pipe(Layer.provide(stub.layer)),
    cache
  ).pipe(Layer.orDie)

const memory = (options: ResponseCache.Options = {}) => ResponseCache.layerMemory({ maxBytes: 1 << 20, ...options })

/** Every byte stored under `dir`, as text. */
const allBytes = (dir: string): string =>
  Fs.readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => Path.join(dir, name))
    .filter((path) => Fs.statSync(path).isFile())
    .map((path) => Fs.readFileSync(path, "latin1"))
    .join("\n")
const entryFiles = (dir: string) =>
  Fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).map((name) => Path.join(dir, name)).filter((p) => Fs.statSync(p).isFile())

describe("ResponseCache stage", () => {
  it.effect("a second identical request (keys in another order) is a hit: nothing sent, no budget, attempts 0", () =>
    Effect.gen(function* () {
      const stub = stubClient([completionReply({ content: "first" }), completionReply({ content: "second" })])
      const hitsBefore = (yield* Metric.value(Metrics.cacheHits.pipe(Metric.tagged("endpoint", "chat")))).count
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        const budget = yield* Budget.Budget
        const first = yield* chat.createWithMetadata(request())
        const reordered = JSON.parse(JSON.stringify({ max_tokens: 50, messages: [{ content: "hi", role: "user" }], model: "gpt-4.1-mini" }))
        const second = yield* chat.createWithMetadata(reordered)
        expect(first.cached).toBeUndefined()
        expect(second).toMatchObject({ cached: true, attempts: 0, status: 200, headers: {} })
        expect(second.completion).toEqual(first.completion)
        expect(stub.count()).toBe(1)
        // only the call that was sent was charged: 10 x $0.4 + 5 x $1.6 per 1M tokens
        expect((yield* budget.snapshot).spentMicroUsd).toBe(12)
        // another prompt is another entry
        expect((yield* chat.create(request("other"))).choices[0]?.message.content).toBe("second")
      }).pipe(Effect.provide(clientWith(stub, Layer.merge(memory(), Budget.layer({ maxUsd: 1 })))))
      const hitsAfter = (yield* Metric.value(Metrics.cacheHits.pipe(Metric.tagged("endpoint", "chat")))).count
      expect(hitsAfter - hitsBefore).toBe(1)
    }))

  it.effect("an entry answers until its ttl has passed (TestClock), then the request is sent again", () =>
    Effect.gen(function* () {
      const stub = stubClient([completionReply()])
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        yield* chat.create(request())
        yield* TestClock.adjust("59 seconds")
        yield* chat.create(request())
        expect(stub.count()).toBe(1)
        yield* TestClock.adjust("2 seconds")
        yield* chat.create(request())
        expect(stub.count()).toBe(2)
      }).pipe(Effect.provide(clientWith(stub, memory({ ttl: "1 minute" }))))
    }))

  it.effect("refresh sends every time and rewrites the entry that a normal cache then reads", () =>
    Effect.gen(function* () {
      const store = MemoryStore.make(1 << 20)
      const stub = stubClient((i) => completionReply({ content: `answer ${i}` }))
      const use = (refresh: boolean) => Layer.effect(ResponseCache.ResponseCache, ResponseCache.make(store, { refresh }))
      const ask = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request()))
      yield* ask.pipe(Effect.provide(clientWith(stub, use(false))))
      const refreshed = yield* Effect.all([ask, ask]).pipe(Effect.provide(clientWith(stub, use(true))))
      expect(refreshed.map((c) => c.choices[0]?.message.content)).toEqual(["answer 1", "answer 2"])
      const read = yield* ask.pipe(Effect.provide(clientWith(stub, use(false))))
      expect(read.choices[0]?.message.content).toBe("answer 2")
      expect(stub.count()).toBe(3)
    }))

  const neverStored: ReadonlyArray<readonly [string, StubReply, ChatSchema.ChatCompletionRequest]> = [
    ["an error", { status: 400, body: errorBody() }, request()],
    ["a refusal", { status: 200, body: JSON.stringify({ ...completion(), choices: [{ index: 0, message: { role: "assistant", content: null, refusal: "I can't" }, finish_reason: "stop", logprobs: null }] }) }, request()],
    ["a content filter stop", { status: 200, body: JSON.stringify({ ...completion(), choices: [{ ...completion().choices[0]!, finish_reason: "content_filter" }] }) }, request()],
    ["an answer cut by max_tokens", { status: 200, body: JSON.stringify({ ...completion(), choices: [{ ...completion().choices[0]!, finish_reason: "length" }] }) }, request()],
    ["a request for n > 1 answers", completionReply(), request("hi", { n: 2 })],
    ["a request offering tools", completionReply(), request("hi", { tools: [{ type: "function", function: { name: "send_mail", parameters: {} } }] })]
  ]
  for (const [what, reply, req] of neverStored) {
    it.effect(`${what} is never stored: the same request is sent again`, () =>
      Effect.gen(function* () {
        const stub = stubClient([reply])
        yield* Effect.gen(function* () {
          const chat = yield* ChatClient.ChatClient
          yield* Effect.either(chat.create(req))
          yield* Effect.either(chat.create(req))
          expect(stub.count()).toBe(2)
        }).pipe(Effect.provide(clientWith(stub, memory())))
      }))
  }

  const embeddingsReply = (indices: ReadonlyArray<number>, vector: ReadonlyArray<number> = [0.1, 0.2]) => ({
    status: 200,
    body: JSON.stringify({ object: "list", model: "text-embedding-3-small", data: indices.map((index) => ({ object: "embedding", index, embedding: vector })), usage: { prompt_tokens: 2, total_tokens: 2 } })
  })
  const incomplete: ReadonlyArray<readonly [string, ReturnType<typeof embeddingsReply>, ChatSchema.EmbeddingRequest["input"]]> = [
    ["one vector for two inputs", embeddingsReply([0]), ["a", "b"]],
    ["the same index twice", embeddingsReply([0, 0]), ["a", "b"]],
    ["an index past the inputs", embeddingsReply([0, 2]), ["a", "b"]],
    ["an empty vector", embeddingsReply([0], []), "a"],
    ["two vectors for one string", embeddingsReply([0, 1]), "a"]
  ]
  /** How many requests two identical embeddings calls send when the server answers `reply`. */
  const sentTwice = (reply: ReturnType<typeof embeddingsReply>, input: ChatSchema.EmbeddingRequest["input"]) => {
    const stub = stubClient([reply])
    const embed = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.embed({ model: "text-embedding-3-small", input }))
    return Effect.zipRight(embed, embed).pipe(Effect.provide(clientWith(stub, memory())), Effect.map(() => stub.count()))
  }
  for (const [what, reply, input] of incomplete) {
    it.effect(`an embeddings answer with ${what} is never stored: the same request is sent again`, () =>
      Effect.map(sentTwice(reply, input), (sent) => expect(sent).toBe(2)))
  }

  it.effect("an embeddings answer with one vector per input is stored, in any order, for strings and for token arrays", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [ReturnType<typeof embeddingsReply>, ChatSchema.EmbeddingRequest["input"]]> = [
        [embeddingsReply([1, 0]), ["a", "b"]],
        [embeddingsReply([0]), "a"],
        [embeddingsReply([0]), [1, 2, 3]],
        [embeddingsReply([0, 1]), [[1, 2], [3]]]
      ]
      for (const [reply, input] of cases) expect(yield* sentTwice(reply, input)).toBe(1)
    }))

  it.effect("an embeddings entry without a vector per input (as an older version stored one) is a miss, and is rewritten", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const stub = stubClient([embeddingsReply([0, 1])])
      const embed = Effect.flatMap(ChatClient.ChatClient, (chat) => chat.embed({ model: "text-embedding-3-small", input: ["a", "b"] }))
        .pipe(Effect.provide(clientWith(stub, ResponseCache.layerFile(dir))))
      yield* embed
      const [file] = entryFiles(dir)
      // The entry re-encoded (its checksum made right) with one of its two vectors dropped.
      const body = Fs.readFileSync(file!, "utf8").split("\n").slice(1)
      const value = JSON.parse(body.slice(1).join("\n")) as { data: ReadonlyArray<unknown> }
      Fs.writeFileSync(file!, Entry.encode(JSON.parse(body[0]!) as Entry.Meta, JSON.stringify({ ...value, data: value.data.slice(0, 1) })))
      expect((yield* embed).data).toHaveLength(2)
      expect(stub.count()).toBe(2)
      expect((yield* embed).data).toHaveLength(2)
      expect(stub.count()).toBe(2)
    }))

  it.effect("cacheLength stores answers cut by max_tokens; a cacheable predicate overrides the default", () =>
    Effect.gen(function* () {
      const cut = { status: 200, body: JSON.stringify({ ...completion(), choices: [{ ...completion().choices[0]!, finish_reason: "length" }] }) }
      const stub = stubClient([cut])
      const tools = request("hi", { tools: [{ type: "function", function: { name: "lookup", parameters: {} } }] })
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        yield* Effect.all([chat.create(request()), chat.create(request()), chat.create(tools), chat.create(tools)])
        expect(stub.count()).toBe(2)
      }).pipe(Effect.provide(clientWith(stub, memory({ cacheLength: true, cacheable: () => true }))))
    }))

  it.effect("streams bypass the cache", () =>
    Effect.gen(function* () {
      const stub = stubClient([completionReply()])
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        yield* chat.create(request())
        yield* Effect.either(Stream.runDrain(chat.stream(request())))
        expect(stub.count()).toBe(2)
      }).pipe(Effect.provide(clientWith(stub, memory())))
    }))

  it.effect("Structured: a rejected answer is never written, a re-ask's accepted answer is; a rejected hit is removed", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const Answer = Schema.Struct({ n: Schema.Number })
      const stub = stubClient([completionReply({ content: "{\"n\": \"bad\"}" }), completionReply({ content: "{\"n\": 1}" })])
      yield* Effect.gen(function* () {
        const result = yield* Structured.generate(Answer, request("give n"))
        expect(result).toMatchObject({ value: { n: 1 }, attempts: 2 })
        const stored = entryFiles(dir).map((p) => Fs.readFileSync(p, "utf8"))
        expect(stored).toHaveLength(1)
        expect(stored[0]).not.toContain("bad")
        // an entry read back and rejected is removed
        const chat = yield* ChatClient.ChatClient
        const plain = request("plain")
        yield* chat.create(plain)
        const held = yield* ResponseCache.hold(chat.create(plain))
        expect(stub.count()).toBe(3)
        yield* held.reject
        yield* chat.create(plain)
        expect(stub.count()).toBe(4)
      }).pipe(Effect.provide(clientWith(stub, ResponseCache.layerFile(dir))))
    }))

  it.effect("a truncated or damaged entry is a miss, never a crash, and is rewritten", () =>
    Effect.gen(function* () {
      const dir = tmp()
      const stub = stubClient([completionReply()])
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        yield* chat.create(request())
        const [file] = entryFiles(dir)
        const whole = Fs.readFileSync(file!, "utf8")
        const damages = [whole.slice(0, whole.length - 7), whole.slice(0, 20), "", whole.replace("\"ok\"", "\"OK\""), "\u0000\u00ff garbage"]
        for (const damaged of damages) {
          Fs.writeFileSync(file!, damaged)
          yield* chat.create(request())
        }
        expect(stub.count()).toBe(1 + damages.length)
        expect(Fs.readFileSync(file!, "utf8")).toBe(whole)
        yield* chat.create(request())
        expect(stub.count()).toBe(1 + damages.length)
      }).pipe(Effect.provide(clientWith(stub, ResponseCache.layerFile(dir))))
    }))

  it.effect("no key material in the store: every stored byte is read, with a server that echoes the key", () =>
    Effect.gen(function* () {
      const dir = tmp()
      // The server echoes the Authorization header into the answer of "echo" requests.
      const stub = stubClient((i) => completionReply({ content: `answer ${i}` }))
      const echoing = stubClient((i) =>
        completionReply({ content: i % 2 === 0 ? `your header: ${echoing.sent[i]?.headers["authorization"]}` : "plain" }, { "content-type": "application/json", "x-echo": KEY }))
      const layer = (s: typeof stub) =>
        Layer.merge(ChatClient.layerWithoutHttpClient({ baseUrl: "http://127.0.0.1:9/v1", apiKey: Redacted.make(KEY) }).pipe(Layer.provide(s.layer)), ResponseCache.layerFile(dir)).pipe(Layer.orDie)
      yield* Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.all([chat.create(request("a")), chat.create(request("b"))])).pipe(Effect.provide(layer(stub)))
      yield* Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.all([chat.create(request("echo")), chat.create(request("echo")), chat.create(request("c"))])).pipe(Effect.provide(layer(echoing)))
      // the transport scrubs the echoed key out of the answer as it arrives: what is stored is the scrubbed answer
      expect(echoing.count()).toBe(2)
      expect(entryFiles(dir)).toHaveLength(4)
      expect(allBytes(dir)).toContain("your header: Bearer [REDACTED]")
      const bytes = allBytes(dir)
      for (const form of [KEY, KEY.slice(3), Buffer.from(KEY).toString("base64"), Buffer.from(KEY).toString("hex"), encodeURIComponent(KEY)]) {
        expect(bytes).not.toContain(form)
      }
    }))

  it.effect("options are checked when the layer is built, naming the option", () =>
    Effect.gen(function* () {
      const ttl = yield* Effect.flip(Layer.build(ResponseCache.layerMemory({ maxBytes: 10, ttl: "-1 seconds" })).pipe(Effect.scoped))
      expect(String(ttl)).toContain("ttl")
      const size = yield* Effect.flip(Layer.build(ResponseCache.layerMemory({ maxBytes: 0 })).pipe(Effect.scoped))
      expect(String(size)).toContain("maxBytes")
    }))
})

describe("ResponseCache stores and keys", () => {
  it.effect("the memory store evicts the least recently used entries once past maxBytes", () =>
    Effect.gen(function* () {
      const key = (c: string) => c.repeat(64)
      const store = MemoryStore.make(3 * (64 + 100))
      for (const c of "abc") yield* store.set(key(c), "x".repeat(100), undefined)
      yield* store.get(key("a"))
      yield* store.set(key("d"), "x".repeat(100), undefined)
      const present = yield* Effect.forEach("abcd", (c) => Effect.map(store.get(key(c)), Option.isSome))
      expect(present).toEqual([true, false, true, true])
      expect(store.bytes()).toBeLessThanOrEqual(3 * 164)
      yield* store.set(key("e"), "x".repeat(1000), undefined)
      expect(Option.isNone(yield* store.get(key("e")))).toBe(true)
    }))

  it.prop("the key ignores the order of object keys and depends on the endpoint, the base URL and the API key", [FastCheck.dictionary(FastCheck.string({ maxLength: 5 }), FastCheck.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })], ([body]) => {
    const reversed = Object.fromEntries(Object.entries(body).reverse())
    const who = Key.identity("https://api.example/v1/", "sk-1")
    expect(Key.of("chat", reversed, who, false)).toBe(Key.of("chat", body, Key.identity("https://api.example/v1", "sk-1"), false))
    expect(Key.of("chat", body, who, false)).not.toBe(Key.of("embeddings", body, who, false))
    expect(Key.of("chat", body, who, false)).not.toBe(Key.of("chat", body, Key.identity("https://api.example/v1", "sk-2"), false))
    expect(Key.of("chat", body, who, true)).toBe(Key.of("chat", body, Key.identity("https://api.example/v1", "sk-2"), true))
  })
})

describe("ResponseCache under a router", () => {
  it.effect("an answer from a fallback model is not stored as the requested model's; the requested model's own answer is", () =>
    Effect.gen(function* () {
      const cache = yield* Effect.provide(ResponseCache.ResponseCache, memory())
      const answerFrom = (model: string) => {
        let sent = 0
        const next: Pipeline.Dispatch = (() => Effect.sync(() => {
          sent++
          return { value: completion(), requestId: "req_1", status: 200, attempts: 1, latencyMillis: 1, headers: {}, route: { deployment: "d", model, tries: [] } }
        })) as unknown as Pipeline.Dispatch
        return { next, sent: () => sent }
      }
      const run = (model: string) =>
        Effect.gen(function* () {
          const answers = answerFrom(model)
          const stage = CacheStage.stage(Key.identity("http://router.test/v1", "sk-test"), (text) => text)(answers.next)
          const call = { ...(yield* callFor(scriptedEndpoint([]).endpoint, { model: "gpt-4.1" })), body: JSON.stringify(request(`to ${model}`, { model: "gpt-4.1" })), cache }
          yield* stage(call)
          yield* stage(call)
          return answers.sent()
        })
      expect(yield* run("gpt-4.1-mini")).toBe(2)
      expect(yield* run("gpt-4.1")).toBe(1)
    }))
})

describe("ResponseCache single flight (MockServer)", () => {
  it.live("base64 embeddings are stored as the wire's base64 and read back as the same Float32Arrays: a second embedMany sends nothing", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make()
      const texts = ["alpha", "beta", "gamma"]
      const run = Embeddings.embedMany(texts, { model: "text-embedding-3-small" })
      const client = ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(memory()))
      const [first, second] = yield* Effect.all([run, run]).pipe(Effect.provide(client))
      expect((yield* mock.journal).filter((e) => e.path.endsWith("/embeddings"))).toHaveLength(1)
      expect(second.every((vector) => vector instanceof Float32Array)).toBe(true)
      expect(second.map((vector) => Array.from(vector))).toEqual(first.map((vector) => Array.from(vector)))
    }).pipe(Effect.scoped))

  it.live("100 identical requests at once are sent once (the mock's journal) and shared as hits across a batch's fibers", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "50 millis" })
      const client = ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(memory()))
      const outcomes = yield* Batch.runAll(Array.from({ length: 100 }, (_, i) => ({ custom_id: `r${i}`, body: request("same") })), { concurrency: 100 }).pipe(
        Effect.provide(client)
      )
      expect((yield* mock.journal).filter((e) => e.path.endsWith("/chat/completions"))).toHaveLength(1)
      expect(outcomes.every((o) => o._tag === "Success")).toBe(true)
      const cached = outcomes.filter((o) => o._tag === "Success" && o.cached !== undefined)
      expect(cached).toHaveLength(99)
      expect(cached.every((o) => o._tag === "Success" && Option.getOrElse(o.costMicroUsd, () => -1) === 0 && Option.isSome(o.cached!.savedMicroUsd))).toBe(true)
    }).pipe(Effect.scoped))

  it.live("a leader interrupted before its answer leaves the followers to send (none fails)", () =>
    Effect.gen(function* () {
      const mock = yield* MockServer.make({ latency: "100 millis" })
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        const leader = yield* Effect.fork(chat.create(request("x")))
        yield* Effect.sleep("20 millis")
        const followers = yield* Effect.fork(Effect.all([chat.create(request("x")), chat.create(request("x"))], { concurrency: "unbounded" }))
        yield* Effect.sleep("20 millis")
        yield* Fiber.interrupt(leader)
        const answers = yield* Fiber.join(followers)
        expect(answers).toHaveLength(2)
        expect((yield* mock.journal).length).toBe(2)
      }).pipe(Effect.provide(ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(memory()))))
    }).pipe(Effect.scoped))

  it.live("a leader that fails leaves its followers to send their own calls: its error is not shared", () =>
    Effect.gen(function* () {
      // The first request is refused (400, not retried); the others would have been answered.
      const mock = yield* MockServer.make({ latency: "100 millis", script: [{ type: "bad_request" }] })
      yield* Effect.gen(function* () {
        const chat = yield* ChatClient.ChatClient
        const leader = yield* Effect.fork(Effect.either(chat.create(request("x"))))
        yield* Effect.sleep("20 millis")
        const followers = yield* Effect.all([chat.create(request("x")), chat.create(request("x"))], { concurrency: "unbounded" })
        expect((yield* Fiber.join(leader))._tag).toBe("Left")
        expect(followers).toHaveLength(2)
        // The refused leader, then one follower leading the next flight; the other shares its answer.
        expect((yield* mock.journal).length).toBe(2)
      }).pipe(Effect.provide(ChatClient.layer({ baseUrl: mock.url }).pipe(Layer.provideMerge(memory()))))
    }).pipe(Effect.scoped))
})

describe.skipIf(!redisAvailable("response cache on Redis"))("ResponseCache on Redis", () => {
  it.live("a password given Redacted beside the URL; entries expire in Redis with ttl; a wrong password fails the layer without showing it", () =>
    Effect.gen(function* () {
      const password = "cache-pw-7f3e9a"
      const server = yield* startRedisWith({ password })
      const url = `redis://127.0.0.1:${server.port}`
      const stub = stubClient([completionReply()])
      const cache = ResponseCache.layerRedis({ url, password: Redacted.make(password), ttl: "1 hour", namespace: "t" })
      yield* Effect.flatMap(ChatClient.ChatClient, (chat) => Effect.all([chat.create(request()), chat.create(request())])).pipe(Effect.provide(clientWith(stub, cache)))
      expect(stub.count()).toBe(1)
      const ttls = yield* admin(`redis://:${password}@127.0.0.1:${server.port}`, async (redis) => Promise.all((await redis.keys("shepherd:cache:t:*")).map((k) => redis.pttl(k))))
      expect(ttls).toHaveLength(1)
      expect(ttls[0]).toBeGreaterThan(3_500_000)
      const refused = yield* Effect.flip(Layer.build(ResponseCache.layerRedis({ url, password: Redacted.make("wrong-pw-1234") })).pipe(Effect.scoped))
      expect(refused._tag).toBe("ResponseCacheError")
      expect(refused.message).not.toContain("wrong-pw-1234")
    }).pipe(Effect.scoped))
})
