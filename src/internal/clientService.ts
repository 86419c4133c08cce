/**
 * How `ChatClient` assembles its service: the pipeline composed once per client, the endpoints
 * (chat, embeddings, streaming) over a transport, and the client's own undici pool.
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Agent } from "undici"
import * as Budget from "../Budget.js"
import type * as ChatError from "../ChatError.js"
import type { ChatResult, EmbeddingResult, Options, Service } from "../ChatClient.js"
import type * as ChatSchema from "../ChatSchema.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import * as CacheKey from "./cache/key.js"
import * as CacheStage from "./cache/stage.js"
import * as CallContext from "./callContext.js"
import * as ChatStream from "./chatStream.js"
import * as Classify from "./classify.js"
import * as Deadlines from "./deadlines.js"
import * as Exchange from "./exchange.js"
import { limit } from "./limit.js"
import * as Observe from "./observe.js"
import * as Pipeline from "./pipeline.js"
import { retry } from "./retryPolicy.js"
import * as Tokens from "./tokens.js"
import type * as Transport from "./transport.js"
import * as TransportPlatform from "./transportPlatform.js"
import * as TransportUndici from "./transportUndici.js"

/**
 * Every call's pipeline, composed once per client (docs/architecture.md): the stages outside in,
 * each in its own module.
 */
const pipeline = (tracing: boolean, cache: Pipeline.Stage, route: Pipeline.Stage = noRoute): Pipeline.Dispatch =>
  Observe.observe({ tracing })(cache(route(Budget.guard(retry(limit(Observe.countAttempt(Pipeline.exchange)))))))

/** One deployment: no route stage (`ChatClient.layerRouter` passes one). */
const noRoute: Pipeline.Stage = (next) => next

/** The cache stage of a client of one deployment: entries keyed by its base URL and a hash of its key. */
const cacheStageOf = (resolved: Options): Pipeline.Stage => {
  const secret = resolved.apiKey === undefined ? undefined : Redacted.value(resolved.apiKey)
  return CacheStage.stage(CacheKey.identity(resolved.baseUrl, secret), Classify.makeClientScrub(secret, resolved.headers))
}

/**
 * The cache stage of a router: entries keyed by every deployment's base URL and key (any of them may
 * answer), and no entry written that holds any of the keys.
 */
export const routerCacheStage = (clients: ReadonlyArray<Options>): Pipeline.Stage => {
  const secrets = clients.map((c) => (c.apiKey === undefined ? "" : Redacted.value(c.apiKey)))
  const scrubs = clients.map((c, i) => Classify.makeClientScrub(secrets[i] === "" ? undefined : secrets[i], c.headers))
  return CacheStage.stage(
    CacheKey.identity(clients.map((c) => c.baseUrl.replace(/\/+$/, "")).join(" "), secrets.join("\n")),
    Classify.combineScrubs(scrubs)
  )
}

const countPrompt = (messages: ReadonlyArray<ChatSchema.ChatMessage>) => Tokens.promptTokens(messages)
const countInput = (input: ChatSchema.EmbeddingRequest["input"]) => Tokens.embeddingInputTokens(input)
const toChatResult = ({ value, ...metadata }: Pipeline.Received<ChatSchema.ChatCompletion>): ChatResult => ({ completion: value, ...metadata })
const valueOf = <A>(received: Pipeline.Received<A>): A => received.value
const toEmbeddingResult = ({ value, ...metadata }: Pipeline.Received<ChatSchema.EmbeddingResponse>): EmbeddingResult => ({ embeddings: value, ...metadata })

/** How one deployment sends: a transport per path, and a way to open streams. */
export interface Transports {
  readonly send: (settings: Transport.Settings) => Transport.Send
  readonly open: (settings: Transport.Settings) => Transport.Open
}

/** The endpoints of one deployment (base URL, key, pool), and what decoding its streams needs. */
export interface Endpoints {
  readonly chat: Pipeline.Endpoint<ChatSchema.ChatCompletion>
  readonly embeddings: Pipeline.Endpoint<ChatSchema.EmbeddingResponse>
  readonly streaming: Pipeline.Endpoint<ChatStream.Opened, Scope.Scope>
  readonly streamSettings: ChatStream.Settings
}

/** The endpoints for these options over `transports`. */
export const endpointsFor = (resolved: Options, transports: Transports, deadlines: Deadlines.Deadlines): Endpoints => {
  const secret = resolved.apiKey === undefined ? undefined : Redacted.value(resolved.apiKey)
  const scrub = Classify.makeClientScrub(secret, resolved.headers)
  const client = { ...resolved, apiKey: secret }
  const chatSettings = Exchange.settingsFor(client, "/chat/completions", deadlines, scrub)
  const streamSettings: ChatStream.Settings = {
    open: transports.open(chatSettings),
    scrub,
    maxEventBytes: resolved.maxEventBytes,
    idleMillis: Duration.toMillis(resolved.idleTimeout)
  }
  return {
    chat: Exchange.chat(transports.send(chatSettings), scrub),
    embeddings: Exchange.embeddings(transports.send(Exchange.settingsFor(client, "/embeddings", deadlines, scrub)), scrub),
    streaming: ChatStream.endpoint(streamSettings),
    streamSettings
  }
}

/** What a client is assembled from: its endpoints, and the start of its calls. */
export interface Assembly {
  readonly endpoints: Endpoints
  readonly start: ReturnType<typeof CallContext.starter>
}

/** Builds the service from resolved options and a way to send. */
const makeWith = (resolved: Options, transports: Transports): Effect.Effect<Service, ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const budget = yield* Effect.serviceOption(Budget.Budget)
    const shared = yield* Effect.serviceOption(RateLimit.RateLimit)
    const endpoints = endpointsFor(resolved, transports, yield* Deadlines.make)
    const start = CallContext.starter({
      dispatch: pipeline(resolved.tracing, cacheStageOf(resolved)),
      clock: yield* Effect.clock,
      timeoutMillis: Duration.toMillis(resolved.timeout),
      retry: resolved.retry,
      limiter: Option.getOrUndefined(shared),
      ownLimiter: Option.isSome(shared) ? shared.value : yield* RateLimit.make(resolved.limits),
      budget: Option.getOrUndefined(budget),
      cache: Option.getOrUndefined(yield* Effect.serviceOption(ResponseCache.ResponseCache))
    })
    return assemble(resolved, { endpoints, start })
  })

/**
 * A client from its endpoints and call starter; `route`, when given, picks the deployment of each
 * call (`ChatClient.layerRouter`).
 */
export const routed = (
  resolved: Options,
  endpoints: Endpoints,
  route: Pipeline.Stage,
  ownLimiter: RateLimit.Service,
  cache: Pipeline.Stage
): Effect.Effect<Service> =>
  Effect.gen(function* () {
    const budget = yield* Effect.serviceOption(Budget.Budget)
    const start = CallContext.starter({
      dispatch: pipeline(resolved.tracing, cache, route),
      clock: yield* Effect.clock,
      timeoutMillis: Duration.toMillis(resolved.timeout),
      retry: resolved.retry,
      limiter: undefined,
      ownLimiter,
      budget: Option.getOrUndefined(budget),
      cache: Option.getOrUndefined(yield* Effect.serviceOption(ResponseCache.ResponseCache))
    })
    return assemble(resolved, { endpoints, start })
  })

/** The service's functions over an assembly. */
const assemble = (resolved: Options, { endpoints, start }: Assembly): Service => {
  const { chat, embeddings, streaming, streamSettings } = endpoints

  const startChat = (request: ChatSchema.ChatCompletionRequest) =>
    start(
      chat,
      request.model,
      JSON.stringify(request.stream === true ? { ...request, stream: undefined, stream_options: undefined } : request),
      Pipeline.Tokens.of(Tokens.completionAllowance(request), request.messages, countPrompt)
    )
  const createWithMetadata = (request: ChatSchema.ChatCompletionRequest): Effect.Effect<ChatResult, ChatError.ChatError> =>
    Effect.map(startChat(request), toChatResult)

  const startEmbed = (request: ChatSchema.EmbeddingRequest) =>
    start(embeddings, request.model, JSON.stringify(request), Pipeline.Tokens.of(0, request.input, countInput))
  const embedWithMetadata = (request: ChatSchema.EmbeddingRequest): Effect.Effect<EmbeddingResult, ChatError.ChatError> =>
    Effect.map(startEmbed(request), toEmbeddingResult)

  /** A streamed call opened up to its first event, in the caller's scope. */
  const openStream = (request: ChatSchema.ChatCompletionRequest) =>
    Observe.streamSpan(
      start(
        streaming,
        request.model,
        JSON.stringify({ ...request, stream: true }),
        Pipeline.Tokens.of(Tokens.completionAllowance(request), request.messages, countPrompt)
      ),
      request.model,
      resolved.tracing
    )
  const stream = (request: ChatSchema.ChatCompletionRequest): Stream.Stream<ChatSchema.ChatCompletionChunk, ChatError.ChatError> =>
    ChatStream.stream(openStream(request), streamSettings)
  const streamForEach: Service["streamForEach"] = (request, f) => ChatStream.forEach(openStream(request), streamSettings, f)

  return {
    create: (request) => Effect.map(startChat(request), valueOf),
    createWithMetadata,
    stream,
    streamForEach,
    embed: (request) => Effect.map(startEmbed(request), valueOf),
    embedWithMetadata,
    options: resolved
  }
}

/** The service over an `HttpClient` (`ChatClient.make`). */
export const overHttpClient = (resolved: Options, http: HttpClient.HttpClient): Effect.Effect<Service, ConfigError.ConfigError, Scope.Scope> =>
  makeWith(resolved, viaHttpClient(http))

const viaHttpClient = (http: HttpClient.HttpClient): Transports => ({
  send: (settings) => TransportPlatform.viaHttpClient(http, settings),
  open: (settings) => TransportPlatform.openViaHttpClient(http, settings)
})

/** The service over its own undici `Agent`, destroyed when the scope closes (`ChatClient.layer`). */
export const makeOwnPool = (resolved: Options): Effect.Effect<Service, ConfigError.ConfigError, Scope.Scope> =>
  Effect.flatMap(ownPool(resolved), (transports) => makeWith(resolved, transports))

/** Transports over a new undici `Agent` for these options, destroyed when the scope closes. */
export const ownPool = (resolved: Options): Effect.Effect<Transports, never, Scope.Scope> =>
  Effect.gen(function* () {
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Agent({
          connections: resolved.connections,
          keepAliveTimeout: Duration.toMillis(resolved.keepAliveTimeout),
          connect: { timeout: Duration.toMillis(resolved.connectTimeout) }
        })
      ),
      (agent) => Effect.promise(() => agent.destroy())
    )
    if (resolved.transport === "undici") {
      return { send: (settings) => TransportUndici.viaUndici(agent, settings), open: (settings) => TransportUndici.openViaUndici(agent, settings) }
    }
    // Loaded only for this transport: it brings @effect/platform-node's HTTP stack (~0.4 s to load).
    const NodeHttpClient = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpClient"))
    const platform = yield* Layer.build(
      NodeHttpClient.layerUndiciWithoutDispatcher.pipe(Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent)))
    )
    return viaHttpClient(Context.get(platform, HttpClient.HttpClient))
  })
