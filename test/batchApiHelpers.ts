/** Test helpers for the Batch API: the mock served on loopback, a TestClock driver, the spec validator. */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type * as Batch from "../src/Batch.js"
import type * as BatchApi from "../src/BatchApi.js"
import * as MockBatchApi from "../src/testing/internal/batchApi.js"
import { specValidators } from "./helpers.js"

export const API_KEY = "sk-test-batch-0123456789abcdef"

/** Answers a request instead of the mock (to echo the key, hang, ...); undefined lets the mock answer. */
export type Intercept = (request: MockBatchApi.Request, res: Http.ServerResponse) => boolean

/** Serves `api` on a free loopback port until the scope closes; requests without the key get 401. */
export const serve = (api: MockBatchApi.BatchApi, intercept?: Intercept) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly server: Http.Server }>((resume) => {
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const request: MockBatchApi.Request = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, body: Buffer.concat(chunks) }
          if (intercept?.(request, res) === true) return
          if (req.headers.authorization !== `Bearer ${API_KEY}`) {
            res.writeHead(401, { "content-type": "application/json" })
            return res.end(JSON.stringify({ error: { message: "Incorrect API key provided.", type: "invalid_request_error", param: null, code: "invalid_api_key" } }))
          }
          const answer = api.handle(request)
          res.writeHead(answer.status, answer.headers)
          res.end(answer.body)
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server })))
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )

/** A mock whose clock is the fiber's `Clock` (a `TestClock` in `it.effect`). */
export const mockOnClock = (options: Partial<MockBatchApi.Options> = {}) =>
  Effect.map(Effect.clock, (clock) => MockBatchApi.make({ now: () => clock.unsafeCurrentTimeMillis(), ...options }))

/**
 * Runs `effect` to its end while moving the TestClock forward a `step` at a time, with a real pause
 * between steps for the loopback I/O; stops early (and interrupts it) once `until` holds.
 */
export const drive = <A, E, R>(effect: Effect.Effect<A, E, R>, options: { readonly step?: Duration.DurationInput; readonly until?: () => boolean } = {}) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 20_000; i++) {
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return yield* Fiber.join(fiber)
      if (options.until?.() === true) {
        yield* Fiber.interrupt(fiber)
        return undefined
      }
      yield* TestClock.adjust(options.step ?? "500 millis")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
    }
    return yield* Effect.die("drive: the effect did not end")
  })

/** `n` chat requests `r-0` .. `r-(n-1)`. */
export const requests = (n: number, model = "gpt-4o-mini"): Array<Batch.BatchRequest> =>
  Array.from({ length: n }, (_, i) => ({
    custom_id: `r-${i}`,
    body: { model, messages: [{ role: "user" as const, content: `Question number ${i}: what is ${i} + ${i}?` }] }
  }))

/** Options for `submit` against `url`, polling on a short scale. */
export const options = (url: string, extra: Partial<BatchApi.Options> = {}): BatchApi.Options => ({
  apiKey: Redacted.make(API_KEY),
  baseUrl: url,
  runId: "test-run",
  initialPollInterval: "1 second",
  pollInterval: "4 seconds",
  initialRetryDelay: "100 millis",
  ...extra
})

export const httpLayer = FetchHttpClient.layer

const spec = JSON.parse(readFileSync(fileURLToPath(new URL("./fixtures/openai-batch-api-schemas.json", import.meta.url)), "utf8")) as {
  components: { schemas: Record<string, unknown> }
}

/** An ajv validator for a schema of the Batch API excerpt (`OpenAIFile`, `Batch`, `ListBatchesResponse`, ...). */
export const batchApiValidatorFor = specValidators(spec.components.schemas, "batchspec")

/** Successful journal entries of one action. */
export const okEntries = (api: MockBatchApi.BatchApi, action: string) => api.journal().filter((e) => e.action === action && e.status === 200)

/** Answers through the mock, then lets `change` rewrite the answer (undefined: unchanged). */
export const rewrite = (api: MockBatchApi.BatchApi, change: (request: MockBatchApi.Request, answer: MockBatchApi.Response) => MockBatchApi.Response | undefined): Intercept =>
  (request, res) => {
    if (request.headers.authorization !== `Bearer ${API_KEY}`) return false
    const answer = api.handle(request)
    const changed = change(request, answer) ?? answer
    res.writeHead(changed.status, changed.headers)
    res.end(changed.body)
    return true
  }

/** The JSON lines of a file's content. */
export const jsonLines = (body: string | Uint8Array): Array<Record<string, unknown>> =>
  String(Buffer.from(body)).split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Record<string, unknown>)
export const jsonlText = (lines: ReadonlyArray<unknown>) => lines.map((l) => `${JSON.stringify(l)}\n`).join("")
