/**
 * The streamed answer read from undici's handler callbacks (internal/undiciStream.ts), driven by a
 * dispatcher that only records the handler: the test plays the socket's part.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as ChatError from "../src/ChatError.js"
import * as UndiciStream from "../src/internal/undiciStream.js"
import { Controller, recorder } from "./undiciHelpers.js"

const log: Array<string> = []
const reading = (maxResponseBytes: number = 1_000): UndiciStream.Reading => ({
  failure: (error) => new ChatError.TransportError({ code: "X", detail: error instanceof Error ? error.constructor.name : String(error), attempts: 1 }),
  tooLarge: () => new ChatError.TransportError({ code: "RESPONSE_TOO_LARGE", detail: "too large", attempts: 1 }),
  maxResponseBytes,
  touch: () => log.push("touch"),
  pause: (on) => log.push(on ? "pause" : "resume"),
  done: () => log.push("done")
})
const options = { origin: "http://127.0.0.1:1", path: "/v1/chat/completions", method: "POST" as const }
const bytes = (text: string) => Buffer.from(text)
const text = (piece: Uint8Array) => Buffer.from(piece).toString()

/** An open whose request has its socket: the handler, and the controller given to it. */
const opening = (maxResponseBytes?: number) =>
  Effect.gen(function* () {
    const { dispatcher, handler } = recorder()
    const fiber = yield* Effect.fork(UndiciStream.open(dispatcher, options, reading(maxResponseBytes), () => {}))
    yield* Effect.yieldNow()
    const controller = new Controller()
    handler().onRequestStart!(controller.as, {})
    return { fiber, h: handler(), controller, c: controller.as }
  })

/** An open answered 200: its pull, the handler, the controller. */
const opened = (maxResponseBytes?: number) =>
  Effect.gen(function* () {
    const { c, controller, fiber, h } = yield* opening(maxResponseBytes)
    h.onResponseStart!(c, 200, {})
    return { started: yield* Fiber.join(fiber), h, controller, c }
  })

describe("undiciStream.open", () => {
  it.effect("the pieces one socket read completed come in one pull; the end after them", () =>
    Effect.gen(function* () {
      const { c, fiber, h } = yield* opening()
      h.onResponseStart!(c, 200, { "x-request-id": "r1" })
      const started = yield* Fiber.join(fiber)
      expect(started.status).toBe(200)
      expect(started.headers["x-request-id"]).toBe("r1")
      // The reader waits; then one socket read delivers three pieces before it runs again.
      const read = yield* Effect.fork(started.pull)
      yield* Effect.yieldNow()
      for (const piece of ["a", "b", "c"]) h.onResponseData!(c, bytes(piece))
      expect(text(yield* Fiber.join(read))).toBe("abc")
      h.onResponseData!(c, bytes("d"))
      h.onResponseEnd!(c, {})
      // An error undici reports after the end changes nothing.
      h.onResponseError!(c, new Error("late"))
      expect(text(yield* started.pull)).toBe("d")
      expect(yield* Effect.flip(started.pull)).toEqual(Option.none())
    }))

  it.effect("an informational 1xx answer is not the answer", () =>
    Effect.gen(function* () {
      const { c, fiber, h } = yield* opening()
      h.onResponseStart!(c, 103, {})
      expect(fiber.unsafePoll()).toBeNull()
      h.onResponseStart!(c, 429, { "retry-after": "1" })
      expect((yield* Fiber.join(fiber)).status).toBe(429)
    }))

  it.effect("an abort before the request has a socket fails the open at once, and aborts the request when it gets one", () =>
    Effect.gen(function* () {
      const { dispatcher, handler } = recorder()
      let abort = () => {}
      const fiber = yield* Effect.fork(UndiciStream.open(dispatcher, options, reading(), (f) => {
        abort = f
      }))
      yield* Effect.yieldNow()
      abort()
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toMatchObject({ _tag: "TransportError", detail: "RequestAbortedError" })
      const controller = new Controller()
      handler().onRequestStart!(controller.as, {})
      expect(controller.calls).toEqual(["abort"])
    }))

  it.effect("an interruption while waiting for the answer aborts the request", () =>
    Effect.gen(function* () {
      const { controller, fiber } = yield* opening()
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(controller.calls).toEqual(["abort"])
    }))

  it.effect("past maxResponseBytes: the size error, the request aborted, what was kept dropped", () =>
    Effect.gen(function* () {
      const { c, controller, h, started } = yield* opened(10)
      h.onResponseData!(c, bytes("123456"))
      h.onResponseData!(c, bytes("789012"))
      const error = yield* Effect.flip(started.pull)
      expect(Option.getOrUndefined(error)).toMatchObject({ code: "RESPONSE_TOO_LARGE" })
      expect(controller.calls).toEqual(["abort"])
    }))

  it.effect("unread pieces past the high-water mark pause the socket; a pull resumes it", () =>
    Effect.gen(function* () {
      const { c, controller, h, started } = yield* opened(10_000_000)
      const big = Buffer.alloc(200 * 1024, 97)
      h.onResponseData!(c, big)
      expect(controller.paused).toBe(false)
      h.onResponseData!(c, big)
      expect(controller.paused).toBe(true)
      expect((yield* started.pull).length).toBe(400 * 1024)
      expect(controller.calls).toEqual(["pause", "resume"])
    }))

  it.effect("an error after the start fails the next pull with the attempt's mapping; data after it is ignored", () =>
    Effect.gen(function* () {
      log.length = 0
      const { c, h, started } = yield* opened()
      h.onResponseData!(c, bytes("x"))
      h.onResponseError!(c, new TypeError("socket hang up"))
      h.onResponseData!(c, bytes("y"))
      expect(text(yield* started.pull)).toBe("x")
      const error = yield* Effect.flip(started.pull)
      expect(Option.getOrUndefined(error)).toMatchObject({ detail: "TypeError" })
      expect(log).toEqual(["touch", "done"])
    }))

  it.effect("a response that ends with only a 1xx fails the open instead of waiting for ever", () =>
    Effect.gen(function* () {
      const { c, fiber, h } = yield* opening()
      h.onResponseStart!(c, 100, {})
      h.onResponseEnd!(c, {})
      expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ _tag: "TransportError", detail: "SocketError" })
    }))

  it.effect("the reader's pause and resume of the socket are told to the deadlines once each (the pause was the reader's, not the server's)", () =>
    Effect.gen(function* () {
      const { c, h, started } = yield* opened(10_000_000)
      log.length = 0
      h.onResponseData!(c, Buffer.alloc(300 * 1024, 97))
      h.onResponseData!(c, Buffer.alloc(10, 97))
      yield* started.pull
      expect(log).toEqual(["touch", "pause", "touch", "resume"])
    }))
})
