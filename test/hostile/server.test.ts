/** The hostile fixture itself: an honest mode answers the client, a raw mode sees the request bytes. */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { ChatClient } from "../../src/index.js"
import * as Hostile from "./server.js"

const KEY = "sk-hostile-fixture-0123456789"
const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "hi" }] }

describe("hostile fixture", () => {
  it.scopedLive("an http mode answers and records the request", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve((_, res) => Hostile.json(res, 200, Hostile.completion("hello")))
      const completion = yield* Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)).pipe(
        Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY) }))
      )
      assert.strictEqual(completion.choices[0]?.message.content, "hello")
      assert.strictEqual(server.requests.length, 1)
      assert.strictEqual(server.requests[0]?.path, "/v1/chat/completions")
      assert.strictEqual(JSON.parse(server.requests[0]!.body).model, "gpt-4.1-mini")
    }))

  it.scopedLive("a raw mode writes bytes on the socket", () =>
    Effect.gen(function* () {
      const server = yield* Hostile.serve({
        raw: (socket) => {
          const body = JSON.stringify(Hostile.completion("raw"))
          socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
        }
      })
      const completion = yield* Effect.flatMap(ChatClient.ChatClient, (chat) => chat.create(request)).pipe(
        Effect.provide(ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY) }))
      )
      assert.strictEqual(completion.choices[0]?.message.content, "raw")
      assert.strictEqual(server.requests[0]?.headers["authorization"], `Bearer ${KEY}`)
    }))
})
