/**
 * A whole answer read from undici's handler callbacks (internal/undiciAnswer.ts), driven by a
 * dispatcher that only records the handler: the test plays the socket's part.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type { Dispatcher } from "undici"
import * as ChatError from "../src/ChatError.js"
import * as UndiciAnswer from "../src/internal/undiciAnswer.js"
import { Controller, recorder } from "./undiciHelpers.js"

const reading = (done: Array<string>, maxResponseBytes = 100): UndiciAnswer.Reading => ({
  failure: (error) => new ChatError.TransportError({ code: "X", detail: error instanceof Error ? error.constructor.name : String(error), attempts: 1 }),
  tooLarge: () => new ChatError.TransportError({ code: "RESPONSE_TOO_LARGE", detail: "too large", attempts: 1 }),
  maxResponseBytes,
  done: () => done.push("done")
})
const options = { origin: "http://127.0.0.1:1", path: "/v1/chat/completions", method: "POST" as const }
/** The send as the undici transport runs it: in one `Effect.async`, aborted when interrupted. */
const sendOf = (dispatcher: Dispatcher, reading: UndiciAnswer.Reading, onAbort: (abort: () => void) => void) =>
  Effect.async<UndiciAnswer.Arrived, UndiciAnswer.Failure>((resume) => {
    const abort = UndiciAnswer.send(dispatcher, options, reading, {
      answered: (arrived) => resume(Effect.succeed(arrived)),
      failed: (error) => resume(Effect.fail(error))
    })
    onAbort(abort)
    return Effect.sync(abort)
  })
const text = (arrived: UndiciAnswer.Arrived) => Buffer.concat(arrived.chunks).toString()

/** Starts a send and returns its fiber, the handler and a controller already given to it. */
const started = (maxResponseBytes?: number) =>
  Effect.gen(function* () {
    const { dispatcher, handler } = recorder()
    const done: Array<string> = []
    const fiber = yield* Effect.fork(sendOf(dispatcher, reading(done, maxResponseBytes), () => {}))
    yield* Effect.yieldNow()
    const controller = new Controller()
    handler().onRequestStart!(controller.as, {})
    return { fiber, h: handler(), controller, c: controller.as, done }
  })

describe("undiciAnswer.send", () => {
  it.effect("the answer's status, headers and every piece at its end; the deadline released once", () =>
    Effect.gen(function* () {
      const { c, done, fiber, h } = yield* started()
      h.onResponseStart!(c, 100, {})
      h.onResponseStart!(c, 200, { "content-type": "application/json" })
      h.onResponseData!(c, Buffer.from("{\"a\":"))
      h.onResponseData!(c, Buffer.from("1}"))
      expect(fiber.unsafePoll()).toBeNull()
      h.onResponseEnd!(c, {})
      const arrived = yield* Fiber.join(fiber)
      expect([arrived.status, arrived.headers["content-type"], text(arrived), arrived.size, arrived.cut]).toEqual([200, "application/json", "{\"a\":1}", 7, undefined])
      expect(done).toEqual(["done"])
    }))

  it.effect("a larger content-length is refused before any of the body is read", () =>
    Effect.gen(function* () {
      const { c, controller, fiber, h } = yield* started(10)
      h.onResponseStart!(c, 200, { "content-length": "11" })
      expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ code: "RESPONSE_TOO_LARGE" })
      expect(controller.calls).toEqual(["abort"])
    }))

  it.effect("a chunked body is counted as it arrives and abandoned past the limit", () =>
    Effect.gen(function* () {
      const { c, controller, fiber, h } = yield* started(10)
      h.onResponseStart!(c, 200, {})
      h.onResponseData!(c, Buffer.from("123456"))
      expect(fiber.unsafePoll()).toBeNull()
      h.onResponseData!(c, Buffer.from("789012"))
      expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ code: "RESPONSE_TOO_LARGE" })
      expect(controller.calls).toEqual(["abort"])
    }))

  it.effect("a chunked body that broke off hands over what arrived with the error (cut); a body with a length just fails", () =>
    Effect.gen(function* () {
      const chunked = yield* started()
      chunked.h.onResponseStart!(chunked.c, 200, {})
      chunked.h.onResponseData!(chunked.c, Buffer.from("{\"a\":1}"))
      chunked.h.onResponseError!(chunked.c, new TypeError("other side closed"))
      const arrived = yield* Fiber.join(chunked.fiber)
      expect([text(arrived), arrived.cut?.detail]).toEqual(["{\"a\":1}", "TypeError"])

      const sized = yield* started()
      sized.h.onResponseStart!(sized.c, 200, { "content-length": "20" })
      sized.h.onResponseData!(sized.c, Buffer.from("{\"a\":1}"))
      sized.h.onResponseError!(sized.c, new TypeError("other side closed"))
      expect(yield* Effect.flip(Fiber.join(sized.fiber))).toMatchObject({ _tag: "TransportError", detail: "TypeError" })
    }))

  it.effect("an abort before the request has a socket fails at once and aborts the request when it gets one", () =>
    Effect.gen(function* () {
      const { dispatcher, handler } = recorder()
      let abort = () => {}
      const done: Array<string> = []
      const fiber = yield* Effect.fork(sendOf(dispatcher, reading(done), (f) => {
        abort = f
      }))
      yield* Effect.yieldNow()
      abort()
      expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ detail: "RequestAbortedError" })
      const controller = new Controller()
      handler().onRequestStart!(controller.as, {})
      expect(controller.calls).toEqual(["abort"])
      expect(done).toEqual(["done"])
    }))

  it.effect("an interruption aborts the request", () =>
    Effect.gen(function* () {
      const { controller, fiber } = yield* started()
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(controller.calls).toEqual(["abort"])
    }))
})
