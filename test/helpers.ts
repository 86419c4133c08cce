/** Shared test helpers: a stub HttpClient, the OpenAPI validator, one expensive run shared by several tests. */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { afterAll, beforeAll } from "@effect/vitest"
import Ajv2020 from "ajv/dist/2020.js"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** A recorded request: what the client put on the wire, and when (the `Clock`'s time: TestClock-friendly). */
export interface Sent {
  readonly url: string
  readonly method: string
  readonly headers: Record<string, string>
  readonly body: string
  readonly atMillis: number
}

/**
 * What the stub answers to one request:
 * - a response: `body` is the whole body, or its parts, each delivered by one read of the body (a
 *   stream's events, or a JSON body cut in two); after the parts comes `then`: the end (default),
 *   nothing until the request is aborted (`hang`), or a broken connection (`reset`, ECONNRESET).
 *   Headers default to `content-type: application/json` for a whole body and `text/event-stream`
 *   for parts;
 * - `transport`: the request fails before any answer, with this cause;
 * - `"hang"`: no answer until the request is aborted.
 */
export type StubReply =
  | {
    readonly status: number
    readonly body: string | ReadonlyArray<string>
    readonly headers?: Record<string, string>
    readonly then?: "end" | "hang" | "reset"
  }
  | { readonly transport: unknown }
  | "hang"

/** Options of {@link stubClient}. */
export interface StubOptions {
  /** Waited on the `Clock` (so TestClock drives it) before each answer. @default none */
  readonly delay?: Duration.DurationInput
}

const bodyText = (request: HttpClientRequest.HttpClientRequest): string =>
  request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""

/** A body delivered one part per read, then its end, a hang until aborted, or a reset. */
const partsBody = (parts: ReadonlyArray<string>, then: "end" | "hang" | "reset", signal: AbortSignal) => {
  let next = 0
  // One part per read, then the end: an error raised at once would drop the parts still queued.
  return new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener("abort", () => controller.error(new Error("aborted")), { once: true })
    },
    pull(controller) {
      if (next < parts.length) return controller.enqueue(new TextEncoder().encode(parts[next++]))
      if (then === "reset") return controller.error(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))
      if (then === "hang") return new Promise<void>(() => {})
      return controller.close()
    }
  })
}

/**
 * The one stub `HttpClient` of the tests. It answers the i-th request with `replies[i]` (the last
 * one repeats), or with `replies(i, now)` for answers that depend on the request's number or the
 * `Clock`'s time, and records what it was sent and when. Like the real clients, a hanging request
 * ends when its abort signal fires.
 */
export const stubClient = (
  replies: ReadonlyArray<StubReply> | ((i: number, nowMillis: number) => StubReply),
  options: StubOptions = {}
) => {
  const sent: Array<Sent> = []
  /** The `Clock` time of each request, in order. */
  const times: Array<number> = []
  /** How many requests saw their abort signal fire while hanging. */
  const aborted = { count: 0 }
  const client = HttpClient.make((request, url, signal) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const i = sent.length
      sent.push({ url: url.toString(), method: request.method, headers: { ...request.headers }, body: bodyText(request), atMillis: now })
      times.push(now)
      const reply = typeof replies === "function" ? replies(i, now) : replies[Math.min(i, replies.length - 1)]!
      const answer: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> = reply === "hang"
        ? Effect.async((resume) => {
          const onAbort = () => {
            aborted.count++
            resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: signal.reason })))
          }
          if (signal.aborted) onAbort()
          else signal.addEventListener("abort", onAbort, { once: true })
        })
        : "transport" in reply
        ? Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: reply.transport }))
        : Effect.sync(() => {
          const whole = typeof reply.body === "string"
          const body = whole ? reply.body as string : partsBody(reply.body as ReadonlyArray<string>, reply.then ?? "end", signal)
          const headers = reply.headers ?? { "content-type": whole ? "application/json" : "text/event-stream" }
          return HttpClientResponse.fromWeb(request, new Response(body, { status: reply.status, headers }))
        })
      return options.delay === undefined ? answer : Effect.zipRight(Effect.sleep(options.delay), answer)
    }))
  return {
    sent,
    aborted,
    /** How many requests it was sent. */
    count: () => sent.length,
    times,
    layer: Layer.succeed(HttpClient.HttpClient, client)
  }
}

/** What a test may set of {@link completion}; the rest is fixed. */
export interface CompletionFixture {
  readonly content?: string
  /** @default "gpt-4.1-mini" */
  readonly model?: string
  /** `null`: no `usage` field. @default { prompt_tokens: 10, completion_tokens: 5 } */
  readonly usage?: { readonly prompt_tokens: number; readonly completion_tokens: number } | null
  /** @default "chatcmpl-1" */
  readonly id?: string
  /** @default 1 */
  readonly created?: number
}

/** The one chat completion fixture: a spec-valid answer "ok" (or `content`) that stopped normally. */
export const completion = ({ content = "ok", model = "gpt-4.1-mini", usage = { prompt_tokens: 10, completion_tokens: 5 }, id = "chatcmpl-1", created = 1 }: CompletionFixture = {}) => ({
  id,
  object: "chat.completion" as const,
  created,
  model,
  choices: [{ index: 0, message: { role: "assistant" as const, content, refusal: null }, finish_reason: "stop" as const, logprobs: null }],
  ...(usage === null ? {} : { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } })
})

/** {@link completion} as a 200 reply of {@link stubClient}. */
export const completionReply = (fixture: CompletionFixture = {}, headers?: Record<string, string>): StubReply => ({
  status: 200,
  body: JSON.stringify(completion(fixture)),
  ...(headers === undefined ? {} : { headers })
})

/** One server-sent `chat.completion.chunk` event carrying `content`, and `finish` as its finish reason. */
export const chunkEvent = (content: string, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: { content }, finish_reason: finish }] })}\n\n`

/** An OpenAI-style error body (`{ error: { message, type, param, code } }`) as JSON text. */
export const errorBody = (message = "no", type = "invalid_request_error", code: string | null = null) =>
  JSON.stringify({ error: { message, type, param: null, code } })

const specPath = fileURLToPath(new URL("./fixtures/openai-chat-schemas.json", import.meta.url))
/** The OpenAI OpenAPI excerpt from test/fixtures (see its README). */
export const spec = JSON.parse(readFileSync(specPath, "utf8")) as { components: { schemas: Record<string, unknown> } }

/**
 * Validators for the components of an OpenAPI description (`schemas` under the id `id`). OpenAPI 3.0's
 * `nullable` is honoured; the `discriminator` hint is dropped (the `oneOf` it annotates is still
 * checked); formats are not.
 */
export const specValidators = (schemas: Record<string, unknown>, id: string) => {
  const ajv = new Ajv2020.default({ strict: false, allErrors: false, validateFormats: false })
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite)
    if (node === null || typeof node !== "object") return node
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(node)) {
      if (key === "discriminator") continue
      out[key] = key === "$ref" && typeof value === "string" ? value.replace("#/components/schemas/", `${id}#/$defs/`) : rewrite(value)
    }
    // OpenAPI 3.0 `nullable: true` means "or null".
    if (out["nullable"] === true) {
      delete out["nullable"]
      return { anyOf: [out, { type: "null" }] }
    }
    return out
  }
  ajv.addSchema({ $id: id, $defs: rewrite(schemas) })
  return (name: string) => {
    const validate = ajv.getSchema(`${id}#/$defs/${name}`)
    if (validate === undefined) throw new Error(`no schema ${name} in ${id}`)
    return (value: unknown): string | undefined => (validate(value) ? undefined : ajv.errorsText(validate.errors))
  }
}

/** An ajv validator for one component of the chat spec excerpt. */
export const validatorFor = specValidators(spec.components.schemas, "spec")

const batchFormat = JSON.parse(
  readFileSync(fileURLToPath(new URL("./fixtures/openai-batch-format.json", import.meta.url)), "utf8")
) as Record<string, unknown>

/** An ajv validator for a line format of the OpenAI Batch API (`BatchRequestInput`, `BatchRequestOutput`). */
export const batchValidatorFor = (name: "BatchRequestInput" | "BatchRequestOutput") => {
  const ajv = new Ajv2020.default({ strict: false, allErrors: false, validateFormats: false })
  const validate = ajv.compile(batchFormat[name] as object)
  return (value: unknown): string | undefined => (validate(value) ? undefined : ajv.errorsText(validate.errors))
}

/** A tracer that keeps every span it is given. */
export const recordingTracer = () => {
  const spans: Array<{ name: string; attributes: Map<string, unknown>; status: Tracer.SpanStatus }> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span", name, spanId: String(spans.length), traceId: "t", parent, context, status: { _tag: "Started", startTime }, attributes, links, sampled: true, kind,
        end: (endTime, exit) => { (span as { status: Tracer.SpanStatus }).status = { _tag: "Ended", startTime, endTime, exit } },
        attribute: (key, value) => { attributes.set(key, value) },
        event: () => {},
        addLinks: () => {}
      }
      spans.push(span as never)
      return span
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

/** What {@link timedStub} answers to one request. */
export interface TimedAnswer {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly body: string
}

/** {@link stubClient} answering `answer(i)` to the i-th request (JSON unless its headers say otherwise), with the `Clock` time of each. */
export const timedStub = (answer: (i: number) => TimedAnswer) => {
  const stub = stubClient((i) => {
    const a = answer(i)
    return { status: a.status, body: a.body, headers: { "content-type": "application/json", ...a.headers } }
  })
  return { times: stub.times, layer: stub.layer }
}

/**
 * Runs `effect` once for the enclosing `describe` (in `beforeAll`; its scope, e.g. a MockServer, is
 * closed in `afterAll`) and returns a function reading its result: several tests can each check one
 * behaviour of one expensive run (a CLI process, say) without starting it again. If the run fails,
 * every test reading it fails with that error.
 */
export const sharedRun = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>, timeout = 60_000): (() => A) => {
  const scope = Effect.runSync(Scope.make())
  let result: { readonly value: A } | undefined
  beforeAll(async () => {
    result = { value: await Effect.runPromise(Scope.extend(effect, scope)) }
  }, timeout)
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return () => {
    if (result === undefined) throw new Error("the shared run did not finish")
    return result.value
  }
}
