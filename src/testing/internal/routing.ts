/**
 * The mock server's routing: the control endpoints, the journal, the API key, then per path the
 * request checked like OpenAI checks it (400 with its error body), the rate limits, a fault if one
 * is due, and the reply.
 * @internal
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Http from "node:http"
import * as ChatSchema from "../../ChatSchema.js"
import { parseJson } from "../../internal/jsonText.js"
import type { JournalEntry } from "../MockServer.js"
import * as BatchApiMock from "./batchApi.js"
import * as Content from "./content.js"
import { answerFault, errorBody } from "./faults.js"
import { send, type State } from "./state.js"
import { isStreamFault, sendStream } from "./streamWriter.js"

const decodeChatRequest = Schema.decodeUnknownEither(ChatSchema.ChatCompletionRequest, { errors: "first" })
const decodeEmbeddingRequest = Schema.decodeUnknownEither(ChatSchema.EmbeddingRequest, { onExcessProperty: "error" })

const issuePath = (error: ParseResult.ParseError): string | null => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined || first.path.length === 0) return null
  // OpenAI writes paths as messages[0].content
  return first.path.map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join("")
}

/** One request being answered. */
interface Exchange {
  readonly state: State
  readonly entry: JournalEntry
  readonly req: Http.IncomingMessage
  readonly res: Http.ServerResponse
}

const invalid = ({ entry, res, state }: Exchange, error: ParseResult.ParseError) =>
  send(state, entry, res, 400, errorBody(`Invalid request body: ${ParseResult.TreeFormatter.formatErrorSync(error)}`, "invalid_request_error", issuePath(error), null))

/** The rate limits first (429 when over), then their headers for the answer. */
const admit = ({ entry, res, state }: Exchange, cost: number): Record<string, string> | undefined => {
  const verdict = state.limits.take(Date.now(), cost)
  if (verdict.limited === undefined) return verdict.headers
  state.stats.rateLimited++
  send(state, entry, res, 429, verdict.body!, verdict.headers)
  return undefined
}

/** A whole answer: the rate limits first, then a fault if one is due, else the reply. */
const answerWith = (x: Exchange, reply: unknown, cost: number) => {
  const headers = admit(x, cost)
  if (headers === undefined) return
  const fault = x.state.nextFault()
  // Streaming faults apply to streamed answers only.
  if (fault !== undefined && !isStreamFault(fault)) return answerFault(x.state, fault, x.entry, x.req, x.res, headers)
  return send(x.state, x.entry, x.res, 200, JSON.stringify(reply), headers)
}

const answerChat = (x: Exchange, body: unknown) => {
  const decoded = x.state.config.validate ? decodeChatRequest(body) : Either.right(body as ChatSchema.ChatCompletionRequest)
  if (Either.isLeft(decoded)) return invalid(x, decoded.left)
  const request = decoded.right
  const reply = Content.completion(request, x.state.config.jsonContent, x.entry.seq)
  const usage = reply.usage!
  const allowance = request.max_completion_tokens ?? request.max_tokens
  // Like OpenAI: the prompt plus the completion allowance (or, without one, what was produced).
  const cost = usage.prompt_tokens + (allowance === undefined || allowance === null ? usage.completion_tokens : allowance * (request.n ?? 1))
  if (request.stream !== true) return answerWith(x, reply, cost)
  const headers = admit(x, cost)
  if (headers === undefined) return
  const fault = x.state.nextFault()
  if (fault !== undefined && isStreamFault(fault)) {
    x.state.countFault(x.entry, fault.type)
    return sendStream(x.state, x.entry, x.req, x.res, request, reply, headers, fault)
  }
  if (fault !== undefined) return answerFault(x.state, fault, x.entry, x.req, x.res, headers)
  return sendStream(x.state, x.entry, x.req, x.res, request, reply, headers, undefined)
}

const answerEmbeddings = (x: Exchange, body: unknown) => {
  const decoded = x.state.config.validate ? decodeEmbeddingRequest(body) : Either.right(body as ChatSchema.EmbeddingRequest)
  if (Either.isLeft(decoded)) return invalid(x, decoded.left)
  const reply = Content.embeddings(decoded.right)
  return answerWith(x, reply, reply.usage.prompt_tokens)
}

/** A POST to the API, after its latency. */
const answer = (x: Exchange, body: unknown) => {
  if (x.entry.path === "/v1/chat/completions") return answerChat(x, body)
  if (x.entry.path === "/v1/embeddings") return answerEmbeddings(x, body)
  return send(x.state, x.entry, x.res, 404, errorBody(`Unknown request URL: ${x.req.method} ${x.entry.path}.`, "invalid_request_error", null, "unknown_url"))
}

/** Control endpoints for a server in another process (benchmarks): outside /v1, never journaled. Whether it was one. */
const control = (state: State, req: Http.IncomingMessage, res: Http.ServerResponse): boolean => {
  if (req.url === "/_mock/stats" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify(state.stats))
    return true
  }
  if (req.url === "/_mock/batch-api" && req.method === "GET") {
    const { batchApi } = state
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify({ journal: batchApi.journal(), files: batchApi.files(), batches: batchApi.batches() }))
    return true
  }
  if (req.url === "/_mock/reset" && req.method === "POST") {
    state.reset()
    res.writeHead(204)
    res.end()
    return true
  }
  return false
}

/** The journal entry of a request (its body parsed when JSON, else as text), kept and counted. */
const record = (state: State, req: Http.IncomingMessage, res: Http.ServerResponse, body: unknown): JournalEntry => {
  const { authorization: _, ...headers } = req.headers
  const entry: JournalEntry = {
    seq: ++state.seq,
    method: req.method ?? "GET",
    path: (req.url ?? "/").split("?")[0] ?? "/",
    headers,
    body,
    receivedAtMillis: Date.now(),
    status: undefined,
    fault: undefined,
    hungUp: false
  }
  state.stats.requests++
  state.journal.push(entry)
  if (state.journal.length > state.config.journalLimit * 2) state.journal = state.journal.slice(-state.config.journalLimit)
  res.on("close", () => {
    if (!res.writableFinished) {
      entry.hungUp = true
      state.stats.hungUp++
    }
  })
  return entry
}

/** `/v1/files` and `/v1/batches`: the raw body (uploads are multipart), no latency, no random fault. */
const answerBatchApi = (state: State, entry: JournalEntry, req: Http.IncomingMessage, res: Http.ServerResponse, body: Buffer) => {
  const answer = state.batchApi.handle({ method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers, body })
  const text = typeof answer.body === "string" ? answer.body : Buffer.from(answer.body).toString("utf8")
  send(state, entry, res, answer.status, text, answer.headers)
}

/** Answers one request whose body has arrived. */
export const handle = (state: State, req: Http.IncomingMessage, res: Http.ServerResponse, body: Buffer): void => {
  if (control(state, req, res)) return
  const path = (req.url ?? "/").split("?")[0] ?? "/"
  const batchRoute = BatchApiMock.handles(path)
  // Uploads are multipart (and up to 200 MB): journaled without their body.
  const raw = batchRoute && !String(req.headers["content-type"] ?? "").includes("json") ? "" : body.toString("utf8")
  const parsed = raw === "" ? Either.right(undefined) : parseJson(raw)
  const entry = record(state, req, res, Either.getOrElse(parsed, () => raw))
  const x: Exchange = { state, entry, req, res }
  const { config } = state
  if (config.apiKey !== undefined && req.headers.authorization !== `Bearer ${config.apiKey}`) {
    return send(state, entry, res, 401, errorBody("Incorrect API key provided. You can find your API key at your provider's dashboard.", "invalid_request_error", null, "invalid_api_key"))
  }
  if (batchRoute) return answerBatchApi(state, entry, req, res, body)
  if (req.method === "GET" && entry.path === "/v1/models") return send(state, entry, res, 200, JSON.stringify(Content.models))
  if (req.method !== "POST") {
    return send(state, entry, res, 405, errorBody(`Method ${req.method} is not allowed for ${entry.path}.`, "invalid_request_error", null, null))
  }
  if (Either.isLeft(parsed) || raw === "") {
    return send(state, entry, res, 400, errorBody("We could not parse the JSON body of your request.", "invalid_request_error", null, null))
  }
  const delay = state.sampleLatency()
  if (delay <= 0) return answer(x, entry.body)
  state.later(delay, () => {
    if (!res.destroyed) answer(x, entry.body)
  })
}
