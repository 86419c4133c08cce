/**
 * How `Embeddings` packs texts into requests under the provider's limits and turns each answer into
 * one outcome per text, in input order.
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as ChatClient from "../ChatClient.js"
import * as ChatError from "../ChatError.js"
import type * as ChatSchema from "../ChatSchema.js"
import type { EmbeddingInputError, Outcome, TextError } from "../Embeddings.js"
import * as EmbeddingVectors from "./embeddingVectors.js"
import * as ErrorRules from "./errorRules.js"

/** The limits and the request fields, checked (`Embeddings.validateOptions`). */
export interface Resolved {
  readonly model: string
  readonly dimensions: number | undefined
  readonly user: string | undefined
  readonly encodingFormat: "base64" | "float"
  readonly concurrency: number
  readonly maxInputsPerRequest: number
  readonly maxTokensPerInput: number
  readonly maxTokensPerRequest: number
  /** Tokens of a text, or `false` past `limit`. */
  readonly countTokens: (text: string, limit: number) => number | false
  /** Whether a text's UTF-8 byte count bounds its tokens (true of byte-level BPE such as cl100k_base). */
  readonly bytesBoundTokens: boolean
}

/**
 * One request's worth of consecutive inputs, from `first` on: the texts to send (with their place in
 * the range), and the inputs refused before sending (with theirs). Outcomes come out in range order.
 */
export interface Request {
  readonly first: number
  size: number
  readonly texts: Array<string>
  readonly places: Array<number>
  readonly refused: Array<readonly [number, EmbeddingInputError]>
}

const newRequest = (first: number): Request => ({ first, size: 0, texts: [], places: [], refused: [] })

/** What a text weighs against the limits, or why it is refused alone. */
type Weight = number | EmbeddingInputError

/**
 * The tokens a text is charged: its UTF-8 byte count when that is small enough to matter for no limit
 * (a byte-level BPE token holds at least one byte), else its counted tokens; refused when empty or
 * past `maxTokensPerInput`. Short texts are not tokenized at all (bench/embeddings: counting 100,000
 * short texts costs ~0.4 s of CPU).
 */
const weigh = (resolved: Resolved, small: number, refuse: (reason: "empty" | "too_long", limit?: number) => EmbeddingInputError) =>
(text: string): Weight => {
  if (text.length === 0) return refuse("empty")
  if (resolved.bytesBoundTokens) {
    const bytes = Buffer.byteLength(text, "utf8")
    if (bytes <= small) return bytes
  }
  const tokens = resolved.countTokens(text, resolved.maxTokensPerInput)
  return tokens === false || tokens > resolved.maxTokensPerInput ? refuse("too_long", resolved.maxTokensPerInput) : tokens
}

/**
 * A channel from texts (each with nothing else: indices are counted here) to requests: texts are added
 * in order while the request stays within `maxInputsPerRequest` and `maxTokensPerRequest`; a refused
 * text joins the request open at its place, without counting against it. At most one request is
 * held open; it is written when full and at the end of the input.
 */
export const pack = <E>(
  resolved: Resolved,
  refuse: (reason: "empty" | "too_long", limit?: number) => EmbeddingInputError
): Channel.Channel<Chunk.Chunk<Request>, Chunk.Chunk<string>, E, E, void, unknown> => {
  const small = Math.min(resolved.maxTokensPerInput, Math.floor(resolved.maxTokensPerRequest / resolved.maxInputsPerRequest))
  const weightOf = weigh(resolved, small, refuse)
  let open = newRequest(0)
  let used = 0
  let index = 0
  const add = (text: string, out: Array<Request>) => {
    const weight = weightOf(text)
    if (typeof weight !== "number") {
      open.refused.push([index - open.first, weight])
    } else {
      if (open.texts.length === resolved.maxInputsPerRequest || used + weight > resolved.maxTokensPerRequest) {
        out.push(open)
        open = newRequest(index)
        used = 0
      }
      open.places.push(index - open.first)
      open.texts.push(text)
      used += weight
    }
    index++
    open.size = index - open.first
  }
  const loop: Channel.Channel<Chunk.Chunk<Request>, Chunk.Chunk<string>, E, E, void, unknown> = Channel.readWithCause({
    onInput: (texts: Chunk.Chunk<string>) => {
      const out: Array<Request> = []
      for (const text of texts) add(text, out)
      return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
    },
    onFailure: (cause: Cause.Cause<E>) => Channel.failCause(cause),
    onDone: () => (open.size === 0 ? Channel.void : Channel.write(Chunk.of(open)))
  })
  return loop
}

/** The body of a request's call. */
const bodyOf = (resolved: Resolved, texts: ReadonlyArray<string>): ChatSchema.EmbeddingRequest => ({
  model: resolved.model,
  input: texts,
  encoding_format: resolved.encodingFormat,
  ...(resolved.dimensions === undefined ? {} : { dimensions: resolved.dimensions }),
  ...(resolved.user === undefined ? {} : { user: resolved.user })
})

/**
 * One vector per text, placed by each item's `index`, as `Float32Array`s; a `ResponseDecodeError`
 * when the answer does not hold exactly one non-empty vector for each text (`EmbeddingVectors.placed`).
 */
export const vectorsOf = (result: ChatClient.EmbeddingResult, count: number): Either.Either<Array<Float32Array>, ChatError.ResponseDecodeError> => {
  const vectors = EmbeddingVectors.placed(result.embeddings.data, count)
  if (vectors !== undefined) return Either.right(vectors.map((v) => (v instanceof Float32Array ? v : Float32Array.from(v))))
  return Either.left(
    new ChatError.ResponseDecodeError({
      status: result.status,
      detail: `the embeddings answer has ${result.embeddings.data.length} vectors (indexes ${result.embeddings.data.slice(0, 5).map((d) => d.index).join(", ")}${result.embeddings.data.length > 5 ? ", ..." : ""}) for ${count} inputs`,
      bodyExcerpt: "",
      requestId: result.requestId,
      attempts: result.attempts
    })
  )
}

/** The outcomes of a request's range: the vectors or the error of its texts, and its refused inputs. */
const outcomesOf = (request: Request, sent: Either.Either<Array<Float32Array>, ChatError.ChatError>): Array<Outcome> => {
  const outcomes = new Array<Outcome>(request.size)
  for (const [place, error] of request.refused) outcomes[place] = { _tag: "Failed", index: request.first + place, error }
  request.places.forEach((place, k) => {
    const index = request.first + place
    outcomes[place] = Either.isRight(sent)
      ? { _tag: "Embedded", index, embedding: sent.right[k]! }
      : { _tag: "Failed", index, error: sent.left as TextError }
  })
  return outcomes
}

/**
 * Sends a request through the client and gives its outcomes. After a refusal that every later request
 * would meet too (`ErrorRules.stopsSending`: the budget is spent, the shared limits cannot be reached,
 * the key is refused), later requests fail with it, unsent, as `Batch.run` does.
 */
export const sender = (chat: ChatClient.Service, resolved: Resolved) => {
  let stoppedBy: ChatError.ChatError | undefined
  return (request: Request): Effect.Effect<Array<Outcome>> => {
    if (request.texts.length === 0) return Effect.succeed(outcomesOf(request, Either.right([])))
    if (stoppedBy !== undefined) return Effect.succeed(outcomesOf(request, Either.left(stoppedBy)))
    return chat.embedWithMetadata(bodyOf(resolved, request.texts)).pipe(
      Effect.flatMap((result) => vectorsOf(result, request.texts.length)),
      Effect.tapError((error) => Effect.sync(() => {
        if (stoppedBy === undefined && ErrorRules.stopsSending(error)) stoppedBy = error
      })),
      Effect.either,
      Effect.map((sent) => outcomesOf(request, sent))
    )
  }
}
