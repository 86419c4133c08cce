/**
 * Stream decoding: a streamed chat call opened up to its first event (the stream's exchange stage,
 * retried like any attempt until that event), then its body read as SSE events, each classified into
 * a chunk or a typed error (internal/classify.ts `streamEvent`). The usage a chunk reports is kept in
 * the opened stream's `usage` ref as chunks are read; the budget and the metrics read it when the
 * stream's scope closes. Nothing is written from a finalizer.
 * @internal
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as MutableRef from "effect/MutableRef"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ChatError from "../ChatError.js"
import type * as ChatSchema from "../ChatSchema.js"
import * as Sse from "../Sse.js"
import * as Classify from "./classify.js"
import * as Pipeline from "./pipeline.js"
import * as Transport from "./transport.js"

/** What the stream stages need of the client's options. */
export interface Settings {
  readonly open: Transport.Open
  readonly scrub: Classify.Scrub
  /** The largest single event (`maxEventBytes`). */
  readonly maxEventBytes: number
  /** The longest gap between two pieces once the first event arrived (`idleTimeout`), in ms. */
  readonly idleMillis: number
}

/** A stream opened up to its first event. */
export interface Opened {
  readonly pull: Transport.Opened["pull"]
  readonly decoder: Sse.Decoder
  /** The events the first read completed (at least one). */
  readonly first: ReadonlyArray<Sse.Event>
  /** The body had already ended with them. */
  readonly ended: boolean
  /** The usage a chunk reported, set as the chunks are read. */
  readonly usage: MutableRef.MutableRef<ChatSchema.CompletionUsage | undefined>
}

/** Reads until the first event: comments and empty pieces do not count. */
const firstEvents = (opened: Transport.Opened, decoder: Sse.Decoder, maxEventBytes: number, attempts: number) =>
  Effect.gen(function* () {
    let first: Array<Sse.Event> = []
    let ended = false
    while (first.length === 0 && !ended) {
      const next = yield* Effect.either(opened.pull)
      if (Either.isRight(next)) first = decoder.feed(next.right)
      else if (Option.isSome(next.left)) return yield* Effect.fail(next.left.value)
      else {
        ended = true
        first = decoder.end()
      }
      if (decoder.overflowed) return yield* Effect.fail(Classify.eventTooLarge(maxEventBytes, attempts))
    }
    if (first.length === 0) {
      return yield* Effect.fail(new ChatError.TransportError({ code: "STREAM_EMPTY", detail: "the stream ended before its first event", attempts }))
    }
    return { first, ended }
  })

/**
 * One streaming attempt: open, check the status, and read up to the first event, in a scope of its
 * own (closed at once when the attempt fails; when the stream's scope closes once it succeeded). The
 * attempt's deadline runs until that event (keep-alive comments do not stop it); the call's total
 * deadline bounds the whole stream.
 */
const openAttempt = (settings: Settings) => (call: Pipeline.Call<Opened, Scope.Scope>, attempt: Pipeline.Attempt) =>
  Effect.suspend(() => {
    call.onSent()
    const attempts = attempt.number
    const timeoutMillis = Pipeline.attemptTimeoutMillis(call, attempt)
    const total = { leftMillis: attempt.deadlineMillis - call.clock.unsafeCurrentTimeMillis(), timeoutMillis: call.policy.totalTimeoutMillis }
    return Effect.flatMap(Scope.make(), (scope) =>
      Effect.gen(function* () {
        const opened = yield* Scope.extend(settings.open(call.body, attempts, timeoutMillis, settings.idleMillis, total), scope)
        const nowMillis = () => call.clock.unsafeCurrentTimeMillis()
        if (opened.status < 200 || opened.status >= 300) {
          const text = yield* Transport.readText(opened.pull, settings.scrub)
          return yield* Effect.fail(Classify.statusError({ status: opened.status, headers: opened.headers, body: text, nowMillis: nowMillis(), attempts }, settings.scrub))
        }
        const decoder = Sse.makeDecoder({ maxEventBytes: settings.maxEventBytes })
        // Until the first event arrives the attempt may be retried.
        const { first, ended } = yield* firstEvents(opened, decoder, settings.maxEventBytes, attempts)
        opened.started()
        yield* Effect.addFinalizer((exit) => Scope.close(scope, exit))
        const value: Opened = { pull: opened.pull, decoder, first, ended, usage: MutableRef.make<ChatSchema.CompletionUsage | undefined>(undefined) }
        const received: Pipeline.Received<Opened> = {
          value,
          requestId: opened.headers["x-request-id"],
          status: opened.status,
          attempts,
          latencyMillis: nowMillis() - attempt.startMillis,
          headers: opened.headers
        }
        return received
      }).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))))
  })

/** A stream's call ends when the stream's scope closes; what it received is kept as it opens. */
const onEnd = (
  effect: Effect.Effect<Pipeline.Received<Opened>, ChatError.ChatError, Scope.Scope>,
  f: (end: Pipeline.End<Opened>) => Effect.Effect<void>
): Effect.Effect<Pipeline.Received<Opened>, ChatError.ChatError, Scope.Scope> =>
  Effect.suspend(() => {
    const opened = MutableRef.make<Pipeline.Received<Opened> | undefined>(undefined)
    return Effect.zipRight(
      Effect.addFinalizer((exit) => f({ exit, received: MutableRef.get(opened) })),
      Effect.tap(effect, (received) => {
        MutableRef.set(opened, received)
      })
    )
  })

/** The streaming endpoint (`POST {baseUrl}/chat/completions` with `stream: true`). */
export const endpoint = (settings: Settings): Pipeline.Endpoint<Opened, Scope.Scope> => ({
  name: "stream",
  exchange: openAttempt(settings),
  // A streamed answer's tokens are known only at its end: the limiter keeps its estimate.
  usedTokens: () => undefined,
  usage: (opened) => MutableRef.get(opened.usage),
  onEnd
})

/** Reads an opened stream's chunks: its own state, written only as it reads. */
class ChunkReader {
  /** `[DONE]` was seen. */
  private done = false
  /** Some choice had a finish reason (without `[DONE]`, the answer is complete only then). */
  private finished = false
  private bodyEnded: boolean
  private readonly context: Classify.StreamContext
  constructor(private readonly opened: Opened, received: Pipeline.Received<Opened>, private readonly settings: Settings) {
    this.bodyEnded = opened.ended
    this.context = { status: received.status, requestId: received.requestId, attempts: received.attempts }
    this.read = Effect.matchEffect(opened.pull, {
      onFailure: (error) => Option.isNone(error) ? this.onEnd() : Effect.fail(error.value),
      onSuccess: (bytes) => this.onBytes(bytes)
    })
  }

  /** The chunks in a piece of events, up to `[DONE]`. */
  toChunks(events: ReadonlyArray<Sse.Event>): Either.Either<Chunk.Chunk<ChatSchema.ChatCompletionChunk>, ChatError.ChatError> {
    const out: Array<ChatSchema.ChatCompletionChunk> = []
    for (const event of events) {
      const decoded = Classify.streamEvent(event.data, this.context, this.settings.scrub)
      if (Either.isLeft(decoded)) return Either.left(decoded.left)
      const chunk = decoded.right
      if (chunk === "done") {
        this.done = true
        break
      }
      if (chunk.usage !== undefined && chunk.usage !== null) MutableRef.set(this.opened.usage, chunk.usage)
      for (const choice of chunk.choices) if (choice.finish_reason !== null) this.finished = true
      out.push(chunk)
    }
    return Either.right(Chunk.unsafeFromArray(out))
  }

  /** At the body's end: the stream is over when the answer was complete, else it ended early. */
  private endOfBody(): Effect.Effect<undefined, ChatError.ChatError> {
    return this.done || this.finished
      ? Effect.succeed(undefined)
      : Effect.fail(new ChatError.TransportError({ code: "STREAM_ENDED_EARLY", detail: "the stream ended before [DONE]", attempts: this.context.attempts }))
  }

  private emit(events: ReadonlyArray<Sse.Event>, next: () => Step): Step {
    const chunks = this.toChunks(events)
    if (Either.isLeft(chunks)) return Effect.fail(chunks.left)
    return chunks.right.length > 0 ? Effect.succeed(chunks.right) : this.done ? Effect.succeed(undefined) : next()
  }

  private onEnd(): Step {
    this.bodyEnded = true
    return this.emit(this.opened.decoder.end(), () => this.endOfBody())
  }

  private onBytes(bytes: Uint8Array): Step {
    const events = this.opened.decoder.feed(bytes)
    return this.opened.decoder.overflowed
      ? Effect.fail(Classify.eventTooLarge(this.settings.maxEventBytes, this.context.attempts))
      : this.emit(events, () => this.read)
  }

  /**
   * The next chunks (`undefined` once the stream is over): bytes are read until they complete an
   * event that holds one. Read only while neither `[DONE]` nor the body's end was seen
   * ({@link after} decides, in the channel, without an effect per read).
   */
  readonly read: Step

  /** What follows the chunks just read: nothing after `[DONE]`, the end-of-body check after the body's end, else `more`. */
  after<A>(more: A): A | "done" | Effect.Effect<undefined, ChatError.ChatError> {
    return this.done ? "done" : this.bodyEnded ? this.endOfBody() : more
  }
}

/** One read of a stream: its next chunks, `undefined` at its end. */
type Step = Effect.Effect<Chunk.Chunk<ChatSchema.ChatCompletionChunk> | undefined, ChatError.ChatError>

/**
 * The reader's chunks as a channel, written as they are read: one `fromEffect` and one `write` per
 * read, with none of the wrapping `Stream.repeatEffectChunkOption` adds (an `Option` per read, a
 * `map` and a `catchAll`) nor the stream `concat` of the first events (bench/streaming). Whether to
 * read again is decided here, between reads, not by an effect of its own.
 */
const channelOf = (reader: ChunkReader, first: Chunk.Chunk<ChatSchema.ChatCompletionChunk>) => {
  type Out = Channel.Channel<Chunk.Chunk<ChatSchema.ChatCompletionChunk>, unknown, ChatError.ChatError, unknown, void, unknown>
  const rest = (): Out => {
    const next = reader.after(loop)
    return next === "done" ? Channel.void : Effect.isEffect(next) ? Channel.asVoid(Channel.fromEffect(next)) : next
  }
  const loop: Out = Channel.flatMap(Channel.fromEffect(reader.read), (chunks) => chunks === undefined ? Channel.void : Channel.zipRight(Channel.write(chunks), rest()))
  return first.length > 0 ? Channel.zipRight(Channel.write(first), rest()) : rest()
}

/**
 * The chunks of an opened stream: the first events', then the rest as they arrive. It ends at
 * `[DONE]`, or at the body's end when every choice had finished (else `STREAM_ENDED_EARLY`); an error
 * event ends it with an `ApiError`; an event past `maxEventBytes` with a final `TransportError`.
 */
export const chunks = (received: Pipeline.Received<Opened>, settings: Settings): Stream.Stream<ChatSchema.ChatCompletionChunk, ChatError.ChatError> =>
  Either.match(begin(received, settings), { onLeft: Stream.fail, onRight: ({ first, reader }) => Stream.fromChannel(channelOf(reader, first)) })

/** The reader of an opened stream, and the chunks of the events its first read completed. */
const begin = (
  received: Pipeline.Received<Opened>,
  settings: Settings
): Either.Either<{ readonly reader: ChunkReader; readonly first: Chunk.Chunk<ChatSchema.ChatCompletionChunk> }, ChatError.ChatError> => {
  const reader = new ChunkReader(received.value, received, settings)
  return Either.map(reader.toChunks(received.value.first), (first) => ({ reader, first }))
}

/**
 * A stream opened by `open` (the pipeline up to the first event) and read to its end, in a scope
 * of its own closed when the stream ends, fails or is interrupted: as `Stream.unwrapScoped` with
 * `chunks`, without the stream `flatten` that carries every chunk through a second executor.
 */
export const stream = <R>(
  open: Effect.Effect<Pipeline.Received<Opened>, ChatError.ChatError, Scope.Scope | R>,
  settings: Settings
): Stream.Stream<ChatSchema.ChatCompletionChunk, ChatError.ChatError, Exclude<R, Scope.Scope>> =>
  Stream.fromChannel(Channel.acquireUseRelease(
    Scope.make(),
    (scope) =>
      Channel.flatMap(Channel.fromEffect(Scope.extend(open, scope)), (received) =>
        Either.match(begin(received, settings), { onLeft: Channel.fail, onRight: ({ first, reader }) => channelOf(reader, first) })),
    (scope, exit) => Scope.close(scope, exit)
  ))

/**
 * As {@link stream} consumed with `Stream.runForEach`, without a `Stream`: the same opening (in a
 * scope of its own, closed when the loop ends, fails or is interrupted) and the same reader, with `f`
 * run on each chunk in a loop of effects. Effect's `Stream.run` forks a fiber and pipes each chunk
 * through three more channels (bench/stream-floor); this does neither.
 */
export const forEach = <R, B, E2, R2>(
  open: Effect.Effect<Pipeline.Received<Opened>, ChatError.ChatError, Scope.Scope | R>,
  settings: Settings,
  f: (chunk: ChatSchema.ChatCompletionChunk) => Effect.Effect<B, E2, R2>
): Effect.Effect<void, ChatError.ChatError | E2, Exclude<R, Scope.Scope> | R2> =>
  Effect.scoped(Effect.flatMap(open, (received) => {
    const begun = begin(received, settings)
    if (Either.isLeft(begun)) return Effect.fail(begun.left)
    const { first, reader } = begun.right
    const each = (chunks: Chunk.Chunk<ChatSchema.ChatCompletionChunk>): Effect.Effect<unknown, E2, R2> =>
      chunks.length === 1 ? f(Chunk.unsafeGet(chunks, 0)) : Effect.forEach(chunks, f, { discard: true })
    const rest = (): Effect.Effect<void, ChatError.ChatError | E2, R2> => {
      const next = reader.after(loop)
      return next === "done" ? Effect.void : next
    }
    const loop: Effect.Effect<void, ChatError.ChatError | E2, R2> = Effect.flatMap(reader.read, (chunks) =>
      chunks === undefined ? Effect.void : Effect.flatMap(each(chunks), rest))
    return first.length > 0 ? Effect.flatMap(each(first), rest) : rest()
  }))
