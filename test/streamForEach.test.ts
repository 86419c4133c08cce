/**
 * ChatClient's `streamForEach`: the chunks and the errors `Stream.runForEach(stream(request), f)`
 * gives, for the same answers (a stub HttpClient on TestClock), and against MockServer over loopback
 * on both transports: retries before the first chunk, a failure of `f`, interruption, the budget.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Budget, ChatClient, ChatSchema } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"
import { chunkEvent as chunk, errorBody, stubClient, type StubReply } from "./helpers.js"

const request: ChatSchema.ChatCompletionRequest = { model: "gpt-4.1-mini", messages: [{ role: "user", content: "Where is my order 42?" }] }

/** A client over a stub answering every request with `reply`, alive for the test's scope. */
const stubbed = (reply: StubReply) =>
  Effect.map(
    Layer.build(ChatClient.layerWithoutHttpClient({ baseUrl: "http://stub.test/v1", retry: { maxRetries: 0 } }).pipe(Layer.provide(stubClient([reply]).layer))),
    (context) => Context.get(context, ChatClient.ChatClient)
  )

/** The chunks `f` saw and how the call ended, one way or the other. */
const both = (chat: ChatClient.Service) =>
  Effect.gen(function* () {
    const viaStream: Array<ChatSchema.ChatCompletionChunk> = []
    const viaEach: Array<ChatSchema.ChatCompletionChunk> = []
    const streamExit = yield* Effect.exit(Stream.runForEach(chat.stream(request), (c) => Effect.sync(() => { viaStream.push(c) })))
    const eachExit = yield* Effect.exit(chat.streamForEach(request, (c) => Effect.sync(() => { viaEach.push(c) })))
    return { viaStream, viaEach, streamExit, eachExit }
  })

const answers: ReadonlyArray<readonly [string, StubReply]> = [
  ["comments, an event split over two reads, [DONE], then a chunk never read", { status: 200, body: [": hi\n\n", chunk("Hel"), chunk("lo", "stop").slice(0, 20), chunk("lo", "stop").slice(20), "data: [DONE]\n\n", chunk("never")] }],
  ["several events in one read", { status: 200, body: [chunk("a") + chunk("b") + chunk("c", "stop") + "data: [DONE]\n\n"] }],
  ["a body that ends with every choice finished, without [DONE]", { status: 200, body: [chunk("a"), chunk("b", "stop")] }],
  ["a body that ends before [DONE] with no finished choice", { status: 200, body: [chunk("a"), chunk("b")] }],
  ["a 400", { status: 400, headers: { "content-type": "application/json" }, body: [errorBody("bad")] }],
  ["an event that is not a chunk after one that is", { status: 200, body: [chunk("a"), "data: {\"unexpected\": true}\n\n"] }],
  ["an error event after two chunks", { status: 200, body: [chunk("a"), chunk("b"), `data: ${errorBody("overloaded", "server_error")}\n\n`] }],
  ["a connection reset after one chunk", { status: 200, body: [chunk("a")], then: "reset" }],
  ["an empty body", { status: 200, body: [] }]
]

describe("ChatClient.streamForEach (stub): the same chunks and the same end as Stream.runForEach", () => {
  for (const [name, reply] of answers) {
    it.scoped(name, () =>
      Effect.gen(function* () {
        const { viaStream, viaEach, streamExit, eachExit } = yield* both(yield* stubbed(reply))
        expect(viaEach).toEqual(viaStream)
        expect(Exit.isSuccess(eachExit)).toBe(Exit.isSuccess(streamExit))
        if (Exit.isFailure(streamExit)) expect(Exit.isFailure(eachExit) ? eachExit.cause.toJSON() : undefined).toEqual(streamExit.cause.toJSON())
      }))
  }

  it.scoped("the cases differ: chunks read, a normal end, each kind of failure", () =>
    Effect.gen(function* () {
      const tags: Array<string> = []
      for (const [, reply] of answers) {
        const { viaEach, eachExit } = yield* both(yield* stubbed(reply))
        tags.push(`${viaEach.length}:${Exit.isSuccess(eachExit) ? "ok" : Exit.isFailure(eachExit) ? JSON.stringify(eachExit.cause.toJSON()).match(/"_tag":"(\w+Error)"/)?.[1] : ""}`)
      }
      expect(tags).toEqual(["2:ok", "3:ok", "2:ok", "2:TransportError", "0:ApiError", "1:ResponseDecodeError", "2:ApiError", "1:TransportError", "0:TransportError"])
    }))

  it.scoped("a stalled stream ends with TimeoutError{phase: idle} (TestClock)", () =>
    Effect.gen(function* () {
      const chat = yield* stubbed({ status: 200, body: [chunk("a"), chunk("b")], then: "hang" })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.flip(chat.streamForEach(request, (c) => Effect.sync(() => { seen.push(c.choices[0]!.delta.content ?? "") }))))
      yield* Effect.yieldNow().pipe(Effect.repeat({ until: () => seen.length === 2 }))
      yield* TestClock.adjust("29 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "TimeoutError", phase: "idle", timeoutMillis: 30_000 })
      expect(seen).toEqual(["a", "b"])
    }))
})

class Stop extends Data.TaggedError("Stop")<{ readonly after: number }> {}

const setup = (transport: ChatClient.Options["transport"], server: Partial<MockServer.Options> = {}) =>
  Effect.gen(function* () {
    const mock = yield* MockServer.make(server)
    const context = yield* Layer.build(
      ChatClient.layer({ baseUrl: mock.url, transport, retry: { initialDelay: "1 millis" } }).pipe(Layer.provideMerge(Budget.layer({ maxUsd: 10 })))
    )
    return { mock, chat: Context.get(context, ChatClient.ChatClient), budget: Context.get(context, Budget.Budget) }
  })

const hungUp = (mock: MockServer.Service) =>
  Effect.retry(Effect.flatMap(mock.journal, (j) => (j.every((e) => e.hungUp) ? Effect.void : Effect.fail("open"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("3 seconds")))

for (const transport of ["undici", "platform"] as const) describe(`ChatClient.streamForEach against MockServer (transport: ${transport})`, () => {
  it.scopedLive("the chunks fold into the completion create gives; a 503 before the first chunk is retried; the budget is charged the stream's usage", () =>
    Effect.gen(function* () {
      const { chat, mock, budget } = yield* setup(transport, { script: [{ type: "server_error", status: 503 }] })
      const withUsage = { ...request, stream_options: { include_usage: true } }
      const seen: Array<ChatSchema.ChatCompletionChunk> = []
      yield* chat.streamForEach(withUsage, (c) => Effect.sync(() => { seen.push(c) }))
      expect((yield* mock.journal).map((e) => e.status)).toEqual([503, 200])
      const afterEach = yield* budget.snapshot
      const viaStream = Chunk.toArray(yield* Stream.runCollect(chat.stream(withUsage)))
      // Each answer has its own id and time; the rest is the same.
      const content = (chunks: ReadonlyArray<ChatSchema.ChatCompletionChunk>) => chunks.map(({ id: _, created: __, ...rest }) => rest)
      expect(content(seen)).toEqual(content(viaStream))
      const afterStream = yield* budget.snapshot
      const whole = yield* chat.create(request)
      expect(ChatSchema.accumulate(seen).choices[0]!.message.content).toBe(whole.choices[0]!.message.content)
      expect(ChatSchema.accumulate(seen).usage).toEqual(whole.usage)
      expect(afterEach.spentMicroUsd).toBeGreaterThan(0)
      expect(afterEach.reservedMicroUsd).toBe(0)
      // The stream and streamForEach are charged alike: the same usage, the same cost.
      expect(afterStream.spentMicroUsd - afterEach.spentMicroUsd).toBe(afterEach.spentMicroUsd)
    }))

  it.scopedLive("a failure of f ends the stream with f's error and closes the connection", () =>
    Effect.gen(function* () {
      const { chat, mock, budget } = yield* setup(transport, { streaming: { interval: "20 millis" } })
      let n = 0
      const error = yield* Effect.flip(chat.streamForEach(request, () => (++n === 3 ? Effect.fail(new Stop({ after: n })) : Effect.void)))
      expect(error).toEqual(new Stop({ after: 3 }))
      yield* hungUp(mock)
      expect((yield* mock.journal)).toHaveLength(1)
      expect((yield* budget.snapshot).reservedMicroUsd).toBe(0)
    }))

  it.scopedLive("a disconnect after the first chunks is not retried: the chunks, then a TransportError", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { script: [{ type: "stream_disconnect", afterChunks: 3 }] })
      const seen: Array<ChatSchema.ChatCompletionChunk> = []
      const error = yield* Effect.flip(chat.streamForEach(request, (c) => Effect.sync(() => { seen.push(c) })))
      expect(seen).toHaveLength(3)
      expect(error._tag).toBe("TransportError")
      expect((yield* mock.journal).map((e) => e.status)).toEqual([200])
    }))

  it.scopedLive("interrupting it closes the connection", () =>
    Effect.gen(function* () {
      const { chat, mock } = yield* setup(transport, { streaming: { interval: "50 millis" } })
      let seen = 0
      const fiber = yield* Effect.fork(chat.streamForEach(request, () => Effect.sync(() => { seen++ })))
      yield* Effect.retry(Effect.suspend(() => (seen >= 2 ? Effect.void : Effect.fail("not yet"))), Schedule.spaced("10 millis").pipe(Schedule.upTo("3 seconds")))
      yield* Fiber.interrupt(fiber)
      yield* hungUp(mock)
    }))
})
