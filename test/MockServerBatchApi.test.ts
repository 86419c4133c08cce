import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as BatchApi from "../src/BatchApi.js"
import * as MockServer from "../src/testing/MockServer.js"
import { API_KEY, httpLayer, options, requests } from "./batchApiHelpers.js"

const fast: MockServer.BatchApiOptions = { validating: "20 millis", perRequest: "5 millis", finalizing: "20 millis" }

describe("MockServer's Batch API", () => {
  it.scopedLive("serves /v1/files and /v1/batches: a submission runs to its outcomes, journaled in both journals, no latency taken", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ apiKey: API_KEY, latency: "2 seconds", batchApi: fast })
      const input = requests(7)
      const outcomes = yield* Stream.runCollect(BatchApi.submit(input, options(server.url, {
        maxRequestsPerFile: 4,
        initialPollInterval: "20 millis",
        pollInterval: "50 millis"
      }))).pipe(Effect.provide([BatchApi.layerMemory, httpLayer]))
      assert.deepStrictEqual(Chunk.toArray(outcomes).map((o) => o.custom_id).sort(), input.map((r) => r.custom_id).sort())
      const journal = yield* server.batchApi.journal
      assert.strictEqual(journal.filter((e) => e.action === "upload" && e.status === 200).length, 2)
      assert.strictEqual(journal.filter((e) => e.action === "create" && e.status === 200).length, 2)
      assert.strictEqual((yield* server.batchApi.batches).every((b) => b.status === "completed"), true)
      const main = yield* server.journal
      assert.ok(main.some((e) => e.path === "/v1/files" && e.method === "POST" && e.status === 200 && e.body === undefined))
      // Over HTTP too, for a server in another process.
      const remote = yield* Effect.promise(() => fetch(server.url.replace(/\/v1$/, "/_mock/batch-api")).then((r) => r.json() as Promise<{ journal: Array<unknown>; batches: Array<unknown> }>))
      assert.strictEqual(remote.batches.length, 2)
      assert.strictEqual(remote.journal.length, journal.length)
    }))

  it.scopedLive("needs the key like the chat routes; file faults are scripted; reset forgets files and batches", () =>
    Effect.gen(function* () {
      const server = yield* MockServer.make({ apiKey: API_KEY, batchApi: { ...fast, fileFaults: [{ type: "server_error", status: 503 }] } })
      const anonymous = yield* Effect.promise(() => fetch(`${server.url}/files`))
      assert.strictEqual(anonymous.status, 401)
      const auth = { authorization: `Bearer ${API_KEY}` }
      const first = yield* Effect.promise(() => fetch(`${server.url}/files`, { headers: auth }))
      assert.strictEqual(first.status, 503)
      const second = yield* Effect.promise(() => fetch(`${server.url}/files`, { headers: auth }).then(async (r) => ({ status: r.status, body: await r.json() as { object: string } })))
      assert.deepStrictEqual([second.status, second.body.object], [200, "list"])
      yield* server.batchApi.setFaults({ files: [{ type: "quota" }] })
      const quota = yield* Effect.promise(() => fetch(`${server.url}/files`, { headers: auth }))
      assert.strictEqual(quota.status, 429)
      yield* Effect.promise(() => fetch(server.url.replace(/\/v1$/, "/_mock/reset"), { method: "POST" }))
      assert.deepStrictEqual(yield* server.batchApi.journal, [])
    }))

  it.effect("refuses a bad time scale or fault with a ConfigError naming it", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.flip(MockServer.validateOptions({ batchApi: { perRequest: "0 millis" } }))
      assert.deepStrictEqual((bad as unknown as { path: Array<string> }).path, ["batchApi", "perRequest"])
      const fault = yield* Effect.flip(MockServer.validateOptions({ batchApi: { fileFaults: [{ type: "hang" } as never] } }))
      assert.deepStrictEqual((fault as unknown as { path: Array<string> }).path, ["batchApi", "fileFaults", "0"])
    }))
})
