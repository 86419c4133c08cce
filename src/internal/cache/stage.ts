/**
 * The cache stage of the pipeline (`observe(cache(Budget.guard(...)))`, docs/architecture.md): a hit
 * answers here, with no budget hold, no limiter and nothing sent; a miss calls the next stages and
 * stores what they answered when it may be replayed. Identical requests in flight at once make one
 * flight: the first (the leader) reads the store and sends; the others wait for its outcome and share
 * it (as hits), also across the fibers of a batch. Streams bypass the cache.
 * @internal
 */
import * as Either from "effect/Either"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Budget from "../../Budget.js"
import type { ChatError } from "../../ChatError.js"
import type * as ChatSchema from "../../ChatSchema.js"
import * as Metrics from "../../Metrics.js"
import * as Pricing from "../../Pricing.js"
import type * as ResponseCache from "../../ResponseCache.js"
import * as Classify from "../classify.js"
import * as EmbeddingVectors from "../embeddingVectors.js"
import { tagged } from "../observe.js"
import type * as Pipeline from "../pipeline.js"
import * as Entry from "./entry.js"
import * as Hold from "./hold.js"
import * as Key from "./key.js"
import * as JsonText from "../jsonText.js"

type Received = Pipeline.Received<unknown>
type Flight = Deferred.Deferred<Exit.Exit<Received, ChatError>>

const NO_LABELS: ReadonlyArray<MetricLabel.MetricLabel> = []
const noScrub: Classify.Scrub = (text) => text

/** The flights in progress, per cache service (so two clients on one cache share them too). */
const flightsOf = (() => {
  const all = new WeakMap<ResponseCache.Service, Map<string, Flight>>()
  return (cache: ResponseCache.Service) => {
    let flights = all.get(cache)
    if (flights === undefined) all.set(cache, flights = new Map())
    return flights
  }
})()

/** Stores whose last operation failed: one warning until one succeeds again. */
const failing = new WeakSet<ResponseCache.Store>()

const quietly = <A>(store: ResponseCache.Store, effect: Effect.Effect<A, ResponseCache.ResponseCacheError>, fallback: A): Effect.Effect<A> =>
  Effect.matchEffect(effect, {
    onSuccess: (a) => {
      failing.delete(store)
      return Effect.succeed(a)
    },
    onFailure: (error) => {
      if (failing.has(store)) return Effect.succeed(fallback)
      failing.add(store)
      return Effect.as(Effect.logWarning(`shepherd: ${error.message}`), fallback)
    }
  })

/**
 * How many vectors an embeddings request asks for: one per string or token array of `input` (a
 * single string or token array is one); undefined when `input` is none of these.
 */
export const inputCount = (input: unknown): number | undefined => {
  if (typeof input === "string") return 1
  if (!Array.isArray(input)) return undefined
  return input.length > 0 && input.every((item) => typeof item === "number") ? 1 : input.length
}

/** An embeddings answer with exactly one non-empty vector for each of `inputs` (`EmbeddingVectors.placed`). */
const completeEmbeddings = (value: unknown, inputs: number | undefined): boolean =>
  inputs !== undefined && EmbeddingVectors.placed((value as ChatSchema.EmbeddingResponse).data, inputs) !== undefined

/**
 * Whether an answer may be replayed: for chat no refusal, no content filter, not cut by `max_tokens`
 * (unless `cacheLength`); for embeddings one vector per input (a server that dropped or repeated one
 * would otherwise answer every rerun the same way, from the store).
 */
export const storable = (endpoint: "chat" | "embeddings", value: unknown, options: ResponseCache.Resolved, inputs?: number): boolean => {
  if (endpoint === "embeddings") return completeEmbeddings(value, inputs)
  const completion = value as ChatSchema.ChatCompletion
  return completion.choices.length > 0 && completion.choices.every((choice) =>
    choice.finish_reason !== "content_filter" &&
    (options.cacheLength || choice.finish_reason !== "length") &&
    (choice.message.refusal ?? "") === "")
}

const decoders = { chat: Classify.decodeSuccess, embeddings: Classify.decodeEmbeddings } as const

/**
 * The answer an entry holds, decoded as the endpoint decodes its answers; undefined when it does not
 * decode, or (embeddings) when it lacks a vector of the request's (an entry an older version stored).
 */
const read = (endpoint: "chat" | "embeddings", text: string, nowMillis: number, inputs: number | undefined): { value: unknown; meta: Entry.Meta } | undefined => {
  const entry = Entry.decode(text, endpoint, nowMillis)
  if (entry === undefined) return undefined
  const decoded = decoders[endpoint]({ status: 200, headers: {}, body: entry.value, nowMillis, attempts: 0 }, noScrub)
  if (decoded._tag === "Left" || (endpoint === "embeddings" && !completeEmbeddings(decoded.right, inputs))) return undefined
  return { value: decoded.right, meta: entry.meta }
}

/** Counts a hit and what it saved (at the budget's prices, else the default table, as observe does). */
const countHit = <A, R>(call: Pipeline.Call<A, R>, value: A): void => {
  tagged(Metrics.cacheHits, "endpoint", call.endpoint.name).unsafeUpdate(1, NO_LABELS)
  const saved = Budget.costOf(call.model, call.endpoint.usage(value), call.budget?.prices ?? Pricing.defaultTable)
  if (Option.isSome(saved)) tagged(Metrics.cacheSavedMicroUsd, "model", call.model).unsafeUpdate(saved.value, NO_LABELS)
}

interface Context {
  readonly cache: ResponseCache.Service
  readonly key: string
  readonly endpoint: "chat" | "embeddings"
  readonly scrub: Classify.Scrub
  /** For embeddings: how many vectors the request asks for. */
  readonly inputs: number | undefined
}

/** The leader: the store, then (on a miss) the next stages; the answer stored, or handed to a hold. */
const lead = <A, R>(ctx: Context, call: Pipeline.Call<A, R>, next: Pipeline.Dispatch): Effect.Effect<Pipeline.Received<A>, ChatError, R> =>
  Effect.gen(function* () {
    const { cache, endpoint, key } = ctx
    const store = cache.store
    const held = yield* FiberRef.get(Hold.current)
    const startMillis = call.clock.unsafeCurrentTimeMillis()
    if (!cache.options.refresh) {
      const found = yield* quietly(store, store.get(key), Option.none())
      const now = call.clock.unsafeCurrentTimeMillis()
      const hit = Option.isSome(found) ? read(endpoint, found.value, now, ctx.inputs) : undefined
      if (hit !== undefined) {
        const value = hit.value as A
        countHit(call, value)
        held?.removes.push(quietly(store, store.remove(key), undefined))
        return { value, requestId: hit.meta.requestId ?? undefined, status: hit.meta.status, attempts: 0, latencyMillis: now - startMillis, headers: {}, cached: true }
      }
    }
    tagged(Metrics.cacheMisses, "endpoint", call.endpoint.name).unsafeUpdate(1, NO_LABELS)
    const received = yield* next(call)
    if (!storable(endpoint, received.value, cache.options, ctx.inputs)) return received
    // A router's fallback answered with another model: not the answer to this request's model.
    if (received.route !== undefined && received.route.model !== call.model) return received
    const ttl = cache.options.ttlMillis
    const meta: Entry.Meta = {
      endpoint,
      expiresAt: ttl === undefined ? null : call.clock.unsafeCurrentTimeMillis() + ttl,
      requestId: received.requestId ?? null,
      status: received.status
    }
    // Embeddings as they came over the wire: a base64 answer's `Float32Array`s back to base64 (JSON
    // would write them as objects, and every read would be a miss).
    const wire = endpoint === "embeddings" ? EmbeddingVectors.toWire(received.value as ChatSchema.EmbeddingResponse) : received.value
    const text = Entry.encode(meta, JSON.stringify(wire))
    // An answer that carries the API key (a server echoing it) is never written anywhere.
    if (ctx.scrub(text) !== text) return received
    const write = quietly(store, store.set(key, text, ttl), undefined)
    if (held === undefined) yield* write
    else {
      held.writes.push(write)
      held.removes.push(quietly(store, store.remove(key), undefined))
    }
    return received
  })

/**
 * Joins the flight for the key, or leads a new one. A follower shares the leader's answer as a hit;
 * a leader that failed (its budget, its deadline, its retries, an interruption) leaves no answer,
 * and the follower's own call goes on, leading the next flight: a failure is the leader's, not the
 * request's. The flight is registered and its end installed in one uninterruptible step, so no
 * interruption can leave a flight that never completes.
 */
const flight = <A, R>(ctx: Context, call: Pipeline.Call<A, R>, next: Pipeline.Dispatch): Effect.Effect<Pipeline.Received<A>, ChatError, R> =>
  Effect.uninterruptibleMask((restore) => {
    const flights = flightsOf(ctx.cache)
    const existing = flights.get(ctx.key)
    if (existing !== undefined) {
      const startMillis = call.clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(restore(Deferred.await(existing)), (exit): Effect.Effect<Pipeline.Received<A>, ChatError, R> => {
        if (Exit.isFailure(exit)) return restore(flight(ctx, call, next))
        const received = exit.value as Pipeline.Received<A>
        countHit(call, received.value)
        return Effect.flatMap(FiberRef.get(Hold.current), (held) => {
          held?.removes.push(quietly(ctx.cache.store, ctx.cache.store.remove(ctx.key), undefined))
          return Effect.succeed({ ...received, attempts: 0, latencyMillis: call.clock.unsafeCurrentTimeMillis() - startMillis, cached: true })
        })
      })
    }
    const mine: Flight = Deferred.unsafeMake(FiberId.none)
    flights.set(ctx.key, mine)
    return Effect.onExit(restore(lead(ctx, call, next)), (exit) =>
      Effect.sync(() => {
        if (flights.get(ctx.key) === mine) flights.delete(ctx.key)
        Deferred.unsafeDone(mine, Exit.succeed(exit as Exit.Exit<Received, ChatError>))
      }))
  })

/** The request's body as an object, or undefined (a body the stage cannot read is sent uncached). */
const parse = (body: string): Record<string, unknown> | undefined => {
  const value = Either.getOrUndefined(JsonText.parseJson(body))
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/**
 * The cache stage for a client of this identity (its base URL and a hash of its key: the key itself
 * is not kept here) and a scrubber of its key, which keeps any answer echoing it out of the store. Without a `ResponseCache` for the
 * call, and for streams, it is `next` itself.
 */
export const stage = (who: Key.Identity, scrub: Classify.Scrub): Pipeline.Stage => {
  return (next) => (call) => {
    const cache = call.cache
    const endpoint = call.endpoint.name
    if (cache === undefined || endpoint === "stream") return next(call)
    return Effect.suspend(() => {
      const body = parse(call.body)
      if (body === undefined || !cache.options.cacheable({ endpoint, body } as ResponseCache.Request)) return next(call)
      const inputs = endpoint === "embeddings" ? inputCount(body["input"]) : undefined
      return flight({ cache, endpoint, scrub, inputs, key: Key.of(endpoint, body, who, cache.options.sharedAcrossKeys) }, call, next)
    })
  }
}
