/**
 * Against a server we did not write: @copilotkit/aimock (MIT, an OpenAI-compatible mock with chaos:
 * 429s with Retry-After, 500s, malformed bodies, dropped connections). Whatever it throws, each call
 * ends with exactly one typed outcome, retries go through, and streams accumulate to the answer.
 */
import { LLMock } from "@copilotkit/aimock"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { ChatClient, ChatSchema } from "../src/index.js"
import { readOut, runToEnd, tmp, writeInput } from "./cliHelpers.js"

const KEY = "sk-aimock-test-0123456789abcdef"

const startMock = (chaos: ConstructorParameters<typeof LLMock>[0] = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const mock = new LLMock({ port: 0, host: "127.0.0.1", journalMaxEntries: 0, ...chaos })
      mock.onMessage(/question/, { content: "Paris is the capital of France." })
      mock.onEmbedding(/.*/, { embedding: [0.1, 0.2, 0.3] })
      await mock.start()
      return mock
    }),
    (mock) => Effect.promise(() => mock.stop())
  )

const client = (mock: LLMock, retry: { maxRetries?: number } = {}) =>
  ChatClient.layer({ baseUrl: `${mock.url}/v1`, apiKey: Redacted.make(KEY), retry: { initialDelay: "1 millis", maxDelay: "5 millis", ...retry } })

const ask = (i: number) => ({ model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: `question ${i}` }] })

describe("against @copilotkit/aimock", () => {
  it.scopedLive("create decodes aimock's completions, one request each", () =>
    Effect.gen(function* () {
      const mock = yield* startMock()
      const completions = yield* Effect.flatMap(ChatClient.ChatClient, (chat) =>
        Effect.forEach([1, 2, 3], (i) => chat.create(ask(i)), { concurrency: 3 })).pipe(Effect.provide(client(mock)))
      for (const c of completions) assert.strictEqual(c.choices[0]?.message.content, "Paris is the capital of France.")
      const journal = mock.getRequests()
      assert.strictEqual(journal.length, 3)
    }))

  it.scopedLive("a stream from aimock accumulates to the same answer", () =>
    Effect.gen(function* () {
      const mock = yield* startMock()
      const chunks = yield* Effect.flatMap(ChatClient.ChatClient, (chat) => Stream.runCollect(chat.stream(ask(1)))).pipe(
        Effect.provide(client(mock))
      )
      const completion = ChatSchema.accumulate(Array.from(chunks))
      assert.strictEqual(completion.choices[0]?.message.content, "Paris is the capital of France.")
    }))

  it.scopedLive("streamForEach over aimock's stream sees the chunks Stream.runCollect sees", () =>
    Effect.gen(function* () {
      const mock = yield* startMock()
      const { viaEach, viaStream } = yield* Effect.flatMap(ChatClient.ChatClient, (chat) =>
        Effect.gen(function* () {
          const viaEach: Array<ChatSchema.ChatCompletionChunk> = []
          yield* chat.streamForEach(ask(1), (chunk) => Effect.sync(() => { viaEach.push(chunk) }))
          return { viaEach, viaStream: Array.from(yield* Stream.runCollect(chat.stream(ask(1)))) }
        })).pipe(Effect.provide(client(mock)))
      assert.isAbove(viaEach.length, 1)
      // Each answer has its own id and time; the content, its pieces and the end are the same.
      const content = (chunks: ReadonlyArray<ChatSchema.ChatCompletionChunk>) => chunks.map((c) => JSON.stringify(c.choices))
      assert.deepStrictEqual(content(viaEach), content(viaStream))
      assert.strictEqual(ChatSchema.accumulate(viaEach).choices[0]?.message.content, "Paris is the capital of France.")
    }))

  it.scopedLive("embeddings from aimock decode", () =>
    Effect.gen(function* () {
      const mock = yield* startMock()
      const response = yield* Effect.flatMap(ChatClient.ChatClient, (chat) =>
        chat.embed({ model: "text-embedding-3-small", input: "question 1" })).pipe(Effect.provide(client(mock)))
      assert.strictEqual(response.data.length, 1)
    }))

  it.scopedLive("under aimock's chaos (429 with Retry-After, 500, malformed JSON, dropped connections) each of 40 calls ends once: retried to success or a typed decode error", () =>
    Effect.gen(function* () {
      const mock = yield* startMock({ chaos: { rateLimitRate: 0.08, malformedRate: 0.1, dropRate: 0.1, disconnectRate: 0.05 } })
      const results = yield* Effect.flatMap(ChatClient.ChatClient, (chat) =>
        Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) => Effect.either(chat.create(ask(i))), { concurrency: 10 })).pipe(
          Effect.provide(client(mock, { maxRetries: 8 }))
        )
      assert.strictEqual(results.length, 40)
      // 429s, 500s and dropped connections are retried until they succeed (8 retries: a call fails
      // all nine attempts with odds below 1e-6). A 200 whose body is not JSON is final by design:
      // the answer may have been billed, so it is not bought again (docs/resilience.md).
      for (const result of results) {
        if (Either.isLeft(result)) assert.strictEqual(result.left._tag, "ResponseDecodeError", result.left.message)
      }
      assert.isAbove(mock.getRequests().length, 40, "chaos made the client retry")
    }))

  it.scopedLive("shepherd run against aimock with chaos: one output line per custom_id, exit 0", () =>
    Effect.gen(function* () {
      const mock = yield* startMock({ chaos: { rateLimitRate: 0.05, malformedRate: 0.05, dropRate: 0.05 } })
      const dir = tmp()
      const input = writeInput(dir, Array.from({ length: 50 }, (_, i) =>
        JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: ask(i) })))
      const out = Path.join(dir, "out.jsonl")
      const ended = yield* runToEnd([input, "--out", out, "--base-url", `${mock.url}/v1`, "--max-retries", "8", "--no-progress"], { OPENAI_API_KEY: KEY })
      assert.strictEqual(ended.code, 0, ended.stderr)
      const lines = readOut(out)
      assert.strictEqual(lines.length, 50)
      assert.strictEqual(new Set(lines.map((l) => l.custom_id)).size, 50)
      assert.notInclude(Fs.readFileSync(out, "utf8"), KEY)
      assert.notInclude(ended.stderr, KEY)
    }))
})
