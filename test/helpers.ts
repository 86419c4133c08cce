/** Shared test helpers: a stub HttpClient, the OpenAPI validator, one expensive run shared by several tests. */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { afterAll, beforeAll } from "@effect/vitest"
import Ajv2020 from "ajv/dist/2020.js"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** A recorded request: what the client put on the wire. */
export interface Sent {
  readonly url: string
  readonly method: string
  readonly headers: Record<string, string>
  readonly body: string
}

/** What the stub answers: a response, a transport failure, or nothing until aborted. */
export type StubReply =
  | { readonly status: number; readonly body: string; readonly headers?: Record<string, string> }
  | { readonly transport: unknown }
  | "hang"

const bodyText = (request: HttpClientRequest.HttpClientRequest): string =>
  request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""

/**
 * An `HttpClient` that answers from `replies` in order (the last one repeats) and records what it
 * was sent. Like the real clients, a hanging request ends when its abort signal fires.
 */
export const stubClient = (replies: ReadonlyArray<StubReply>) => {
  const sent: Array<Sent> = []
  /** How many requests saw their abort signal fire. */
  const aborted = { count: 0 }
  const client = HttpClient.make((request, url, signal) => {
    sent.push({ url: url.toString(), method: request.method, headers: { ...request.headers }, body: bodyText(request) })
    const reply = replies[Math.min(sent.length - 1, replies.length - 1)]!
    if (reply === "hang") {
      return Effect.async<never, HttpClientError.HttpClientError>((resume) => {
        const onAbort = () => {
          aborted.count++
          resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: signal.reason })))
        }
        if (signal.aborted) onAbort()
        else signal.addEventListener("abort", onAbort, { once: true })
      })
    }
    if ("transport" in reply) {
      return Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: reply.transport }))
    }
    return Effect.succeed(
      HttpClientResponse.fromWeb(request, new Response(reply.body, { status: reply.status, headers: reply.headers ?? { "content-type": "application/json" } }))
    )
  })
  return { sent, aborted, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const specPath = fileURLToPath(new URL("./fixtures/openai-chat-schemas.json", import.meta.url))
/** The OpenAI OpenAPI excerpt from test/fixtures (see its README). */
export const spec = JSON.parse(readFileSync(specPath, "utf8")) as { components: { schemas: Record<string, unknown> } }

/**
 * An ajv validator for one component of the spec. OpenAPI 3.0's `nullable` is honoured; the
 * `discriminator` hint is dropped (the `oneOf` it annotates is still checked); formats are not.
 */
export const validatorFor = (() => {
  const ajv = new Ajv2020.default({ strict: false, allErrors: false, validateFormats: false })
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite)
    if (node === null || typeof node !== "object") return node
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(node)) {
      if (key === "discriminator") continue
      out[key] = key === "$ref" && typeof value === "string" ? value.replace("#/components/schemas/", "spec#/$defs/") : rewrite(value)
    }
    // OpenAPI 3.0 `nullable: true` means "or null".
    if (out["nullable"] === true) {
      delete out["nullable"]
      return { anyOf: [out, { type: "null" }] }
    }
    return out
  }
  ajv.addSchema({ $id: "spec", $defs: rewrite(spec.components.schemas) })
  return (name: string) => {
    const validate = ajv.getSchema(`spec#/$defs/${name}`)
    if (validate === undefined) throw new Error(`no schema ${name} in the spec`)
    return (value: unknown): string | undefined => (validate(value) ? undefined : ajv.errorsText(validate.errors))
  }
})()

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

/** An `HttpClient` answering `answer(i)` to the i-th request and recording the `Clock` time of each (TestClock-friendly). */
export const timedStub = (answer: (i: number) => TimedAnswer) => {
  const times: Array<number> = []
  const client = HttpClient.make((req) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const a = answer(times.length)
      times.push(now)
      return HttpClientResponse.fromWeb(req, new Response(a.body, { status: a.status, headers: { "content-type": "application/json", ...a.headers } }))
    }))
  return { times, layer: Layer.succeed(HttpClient.HttpClient, client) }
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
