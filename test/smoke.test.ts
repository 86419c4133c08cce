import { it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { ChatClient } from "../src/index.js"
import { MockServer } from "../src/testing/index.js"

it.live("smoke", () => Effect.gen(function* () {
  const server = yield* MockServer.make({})
  const ctx = yield* Layer.build(ChatClient.layer({ baseUrl: server.url })); const client = Context.get(ctx, ChatClient.ChatClient)
  const r = yield* client.createWithMetadata({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "hello there" }] })
  console.log(JSON.stringify(r, null, 1))
  yield* server.setScript([{type:"truncated_body"},{type:"reset"},{type:"malformed_json"},{type:"server_error"},{type:"rate_limit", retryAfterSeconds: 2}])
  for (let i = 0; i < 5; i++) {
    const e = yield* Effect.flip(client.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "hello there" }] }))
    console.log(e._tag, e.message)
  }
}).pipe(Effect.scoped))
