/** The provider's refusals and faults: retried where waiting helps, typed errors otherwise, never the key. */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type * as Batch from "../src/Batch.js"
import * as BatchApi from "../src/BatchApi.js"
import type * as MockBatchApi from "../src/testing/internal/batchApi.js"
import { API_KEY, drive, httpLayer, mockOnClock, okEntries, options, requests, serve } from "./batchApiHelpers.js"

const run = (input: ReadonlyArray<Batch.BatchRequest>, opts: BatchApi.Options) =>
  drive(Effect.exit(Effect.map(Stream.runCollect(BatchApi.submit(input, opts)), Chunk.toArray)))

const failureOf = <A, E>(exit: Exit.Exit<A, E> | undefined): E | undefined =>
  exit !== undefined && Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const provided = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(Effect.provide([BatchApi.layerMemory, httpLayer]))

describe("BatchApi: faults and refusals", () => {
  it.scoped("5xx and 429 on the file endpoints are retried; the upload is not repeated", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock({
        // Upload: 502; then the look for it (list): 429, 503, ok; the upload again: ok; the download: 500, then ok.
        fileFaults: [{ type: "server_error", status: 502 }, { type: "rate_limit", retryAfterSeconds: 1 }, { type: "server_error", status: 503 }, "ok", "ok", { type: "server_error", status: 500 }]
      })
      const { url } = yield* serve(api)
      const exit = yield* run(requests(3), options(url))
      assert.isTrue(Exit.isSuccess(exit!))
      assert.strictEqual(Exit.isSuccess(exit!) ? exit.value.length : 0, 3)
      assert.deepStrictEqual(api.journal().filter((e) => e.path.startsWith("/v1/files")).map((e) => `${e.action} ${e.status}`), [
        "fault 502", "fault 429", "fault 503", "list 200", "upload 200", "fault 500", "content 200"
      ])
      assert.strictEqual(okEntries(api, "upload").length, 1)
    })))

  it.scoped("an upload that reached the provider but whose answer was lost is found again, not repeated", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock()
      let lost = false
      // The first upload is stored, then answered with a 502 as a proxy would after a timeout.
      const { url } = yield* serve(api, (request, res) => {
        if (lost || request.method !== "POST" || request.url !== "/v1/files") return false
        lost = true
        api.handle(request)
        res.writeHead(502, { "content-type": "text/html" })
        res.end("<html>502 Bad Gateway</html>")
        return true
      })
      const exit = yield* run(requests(3), options(url))
      assert.isTrue(Exit.isSuccess(exit!))
      assert.strictEqual(api.files().filter((f) => f.purpose === "batch").length, 1)
      assert.strictEqual(okEntries(api, "create").length, 1)
    })))

  it.scoped("a quota refusal is a QuotaError at once, not retried", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock({ batchFaults: [{ type: "quota" }] })
      const { url } = yield* serve(api)
      const error = failureOf(yield* run(requests(2), options(url)))
      assert.strictEqual(error?._tag, "QuotaError")
      assert.include(error?.message, "insufficient_quota")
      assert.strictEqual(api.journal().filter((e) => e.path === "/v1/batches").length, 1)
    })))

  it.scoped("a file larger than the provider takes: FileTooLargeError; one request above maxBytesPerFile: refused before sending", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock({ maxFileBytes: 300 })
      const { url } = yield* serve(api)
      const refused = failureOf(yield* run(requests(3), options(url)))
      assert.strictEqual(refused?._tag, "FileTooLargeError")
      const local = failureOf(yield* run(requests(3), options(url, { maxBytesPerFile: 100 })))
      assert.strictEqual(local?._tag, "FileTooLargeError")
      assert.include(local?.message, "maxBytesPerFile")
      assert.strictEqual(api.journal().filter((e) => e.action === "upload").length, 1)
    })))

  it.scoped("more requests than the provider takes in a batch: TooManyRequestsError", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock({ maxRequestsPerFile: 2 })
      const { url } = yield* serve(api)
      const error = failureOf(yield* run(requests(3), options(url)))
      assert.strictEqual(error?._tag, "TooManyRequestsError")
    })))

  it.scoped("a custom_id used twice is refused with both positions before anything is sent", () =>
    provided(Effect.gen(function* () {
      const api = yield* mockOnClock()
      const { url } = yield* serve(api)
      const input = [...requests(3), { ...requests(1)[0]! }]
      const error = failureOf(yield* run(input, options(url)))
      assert.strictEqual(error?._tag, "InvalidLinesError")
      if (error?._tag === "InvalidLinesError") assert.deepInclude(error.errors[0]!, { index: 3, custom_id: "r-0" })
      assert.strictEqual(api.journal().length, 0)
    })))

  it.scoped("a wrong option is a ConfigError naming it", () =>
    provided(Effect.gen(function* () {
      const error = failureOf(yield* run(requests(1), options("http://127.0.0.1:9/v1", { maxRequestsPerFile: 0 })))
      assert.strictEqual(error?._tag, "ConfigError")
      assert.include(String(error), "maxRequestsPerFile")
    })))

  it.scoped("a server that echoes the key: not in the error, its message, nor the state file", () =>
    Effect.gen(function* () {
      const api = yield* mockOnClock()
      const echo = (request: MockBatchApi.Request, res: import("node:http").ServerResponse) => {
        const auth = String(request.headers["authorization"])
        const answer = request.url === "/v1/batches" && request.method === "POST"
          ? { status: 400, headers: { "content-type": "application/json" }, body: JSON.stringify({ error: { message: `bad request from ${auth} (${encodeURIComponent(auth)})`, type: "invalid_request_error", param: null, code: "echo" } }) }
          : api.handle(request)
        res.writeHead(answer.status, { ...answer.headers, "x-echo": auth })
        res.end(answer.body)
        return true
      }
      const { url } = yield* serve(api, echo)
      const statePath = join(mkdtempSync(join(tmpdir(), "shepherd-batch-")), "state.json")
      const error = failureOf(yield* run(requests(2), options(url)).pipe(Effect.provide(BatchApi.layerFile(statePath))))
      assert.strictEqual(error?._tag, "ProviderError")
      assert.include(error?.message, "[REDACTED]")
      assert.notInclude(JSON.stringify(error), API_KEY)
      assert.notInclude(error?.message, API_KEY)
      assert.notInclude(readFileSync(statePath, "utf8"), API_KEY)
    }).pipe(Effect.provide(httpLayer)))
})
