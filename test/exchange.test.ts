/** The exchange stage (internal/exchange.ts): one attempt sent, its answer classified. */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChatError from "../src/ChatError.js"
import * as Classify from "../src/internal/classify.js"
import * as Exchange from "../src/internal/exchange.js"
import * as Pipeline from "../src/internal/pipeline.js"
import type * as Transport from "../src/internal/transport.js"
import { callFor } from "./pipelineHelpers.js"

const completion = JSON.stringify({
  id: "c", object: "chat.completion", created: 1, model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "ok", refusal: null }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 }
})
const scrub = Classify.makeScrub(undefined)
const attempt = (number: number): Pipeline.Attempt => ({ number, startMillis: 0, deadlineMillis: 30_000, bounds: {} })

/** A Send answering `exchange` and recording the timeouts it was given. */
const sending = (exchange: Transport.Exchange | ChatError.TransportError) => {
  const timeouts: Array<number> = []
  const send: Transport.Send = (_body, _attempts, timeoutMillis) => {
    timeouts.push(timeoutMillis)
    return exchange instanceof ChatError.TransportError ? Effect.fail(exchange) : Effect.succeed(exchange)
  }
  return { send, timeouts }
}

describe("exchange stage", () => {
  it.effect("a 2xx is decoded with its request id, status, attempt and headers; its usage and tokens are read", () =>
    Effect.gen(function* () {
      const { send, timeouts } = sending({ status: 200, headers: { "x-request-id": "req-2" }, text: completion })
      const chat = Exchange.chat(send, scrub)
      let sent = 0
      const call = { ...(yield* callFor(chat)), onSent: () => { sent++ } }
      const received = yield* chat.exchange(call, attempt(3))
      expect(received).toMatchObject({ requestId: "req-2", status: 200, attempts: 3, headers: { "x-request-id": "req-2" } })
      expect(chat.usage(received.value)).toEqual({ prompt_tokens: 8, completion_tokens: 2, total_tokens: 10 })
      expect(chat.usedTokens(received.value)).toBe(10)
      expect(sent).toBe(1)
      // The client's timeout (60 s) cut to what is left of the total deadline (30 s).
      expect(timeouts).toEqual([30_000])
    }))

  it.effect("a non-2xx is typed by its status; a transport failure passes through", () =>
    Effect.gen(function* () {
      const limited = Exchange.chat(sending({ status: 429, headers: { "retry-after-ms": "250" }, text: "" }).send, scrub)
      const error = yield* Effect.flip(limited.exchange(yield* callFor(limited), attempt(1)))
      expect(error).toMatchObject({ _tag: "RateLimitError", retryAfterMillis: 250, attempts: 1 })
      const reset = new ChatError.TransportError({ code: "ECONNRESET", detail: "reset", attempts: 1 })
      const broken = Exchange.chat(sending(reset).send, scrub)
      expect(yield* Effect.flip(broken.exchange(yield* callFor(broken), attempt(1)))).toBe(reset)
    }))

  it.effect("a body that broke off counts only when it decodes to a whole answer", () =>
    Effect.gen(function* () {
      const cut = new ChatError.TransportError({ code: "UND_ERR_SOCKET", detail: "closed", attempts: 1 })
      const whole = Exchange.chat(sending({ status: 200, headers: {}, text: completion, cut }).send, scrub)
      expect((yield* whole.exchange(yield* callFor(whole), attempt(1))).status).toBe(200)
      const partial = Exchange.chat(sending({ status: 200, headers: {}, text: completion.slice(0, 20), cut }).send, scrub)
      expect(yield* Effect.flip(partial.exchange(yield* callFor(partial), attempt(1)))).toBe(cut)
    }))

  it.effect("embeddings: usage is the prompt tokens and no completion tokens", () =>
    Effect.gen(function* () {
      const body = JSON.stringify({ object: "list", model: "e", data: [{ object: "embedding", index: 0, embedding: [0.1] }], usage: { prompt_tokens: 4, total_tokens: 4 } })
      const embeddings = Exchange.embeddings(sending({ status: 200, headers: {}, text: body }).send, scrub)
      const received = yield* embeddings.exchange(yield* callFor(embeddings), attempt(1))
      expect(embeddings.usage(received.value)).toEqual({ prompt_tokens: 4, completion_tokens: 0 })
    }))
})
