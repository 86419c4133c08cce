/**
 * The exchange stage: one attempt at a whole answer (chat completions, embeddings). The transport
 * (internal/transport.ts) sends and reads the body within the attempt's deadline and size limit;
 * classify (internal/classify.ts) turns the answer into a value or a typed error.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as ChatError from "../ChatError.js"
import type * as ChatSchema from "../ChatSchema.js"
import * as Classify from "./classify.js"
import type { Deadlines } from "./deadlines.js"
import * as Pipeline from "./pipeline.js"
import type * as Transport from "./transport.js"
import * as Usage from "./usage.js"
import { VERSION } from "./version.js"

/** What the transport needs of the client's options. */
export interface ClientSettings {
  readonly baseUrl: string
  readonly headers: Readonly<Record<string, string>>
  readonly apiKey: string | undefined
  readonly connectTimeout: Duration.DurationInput
  readonly maxResponseBytes: number
}

/** The transport's settings for `path` under the base URL. */
export const settingsFor = (client: ClientSettings, path: string, deadlines: Deadlines, scrub: Classify.Scrub): Transport.Settings => ({
  url: new URL(client.baseUrl.replace(/\/+$/, "") + path),
  headers: {
    ...client.headers,
    "user-agent": `effect-shepherd/${VERSION}`,
    accept: "application/json",
    ...(client.apiKey === undefined ? {} : { authorization: `Bearer ${client.apiKey}` })
  },
  connectTimeoutMillis: Duration.toMillis(client.connectTimeout),
  maxResponseBytes: client.maxResponseBytes,
  deadlines,
  scrub
})

/** A whole answer's call ends with its effect. */
export const onEnd = <A>(
  effect: Effect.Effect<Pipeline.Received<A>, ChatError.ChatError>,
  f: (end: Pipeline.End<A>) => Effect.Effect<void>
): Effect.Effect<Pipeline.Received<A>, ChatError.ChatError> =>
  Effect.onExit(effect, (exit) => f({ exit, received: Exit.isSuccess(exit) ? exit.value : undefined }))

type Classifier<A> = (
  received: Classify.Received,
  scrub: Classify.Scrub
) => Either.Either<A, ChatError.RateLimitError | ChatError.ApiError | ChatError.ResponseDecodeError>

/** An endpoint for whole answers: `send` one attempt, then `classify` what came back. */
export const endpoint = <A>(
  name: "chat" | "embeddings",
  send: Transport.Send,
  classify: Classifier<A>,
  scrub: Classify.Scrub,
  read: { readonly usage: (value: A) => Pipeline.Usage | undefined; readonly usedTokens: (value: A) => number | undefined }
): Pipeline.Endpoint<A> => ({
  name,
  usage: read.usage,
  usedTokens: read.usedTokens,
  onEnd,
  exchange: (call, attempt) =>
    Effect.suspend(() => {
      call.onSent()
      const attempts = attempt.number
      return Effect.flatMap(send(call.body, attempts, Pipeline.attemptTimeoutMillis(call, attempt)), ({ headers, status, text, cut }) => {
        const now = call.clock.unsafeCurrentTimeMillis()
        const classified = classify({ status, headers, body: text, nowMillis: now, attempts }, scrub)
        // A body that broke off counts only when it is a whole answer: a 2xx that decodes.
        return Either.isLeft(classified)
          ? Effect.fail(cut ?? classified.left)
          : Effect.succeed<Pipeline.Received<A>>({ value: classified.right, requestId: headers["x-request-id"], status, attempts, latencyMillis: now - attempt.startMillis, headers })
      })
    })
})

/** Chat completions (`POST {baseUrl}/chat/completions`). */
export const chat = (send: Transport.Send, scrub: Classify.Scrub): Pipeline.Endpoint<ChatSchema.ChatCompletion> =>
  endpoint("chat", send, Classify.classify, scrub, { usage: Usage.ofCompletion, usedTokens: (completion) => completion.usage?.total_tokens })

/** Embeddings (`POST {baseUrl}/embeddings`). */
export const embeddings = (send: Transport.Send, scrub: Classify.Scrub): Pipeline.Endpoint<ChatSchema.EmbeddingResponse> =>
  endpoint("embeddings", send, Classify.classifyWith(Classify.decodeEmbeddings), scrub, {
    usage: Usage.ofEmbeddings,
    usedTokens: (response) => response.usage.total_tokens
  })
