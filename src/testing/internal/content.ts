/**
 * The mock server's replies: pure, deterministic functions of the request.
 * @internal
 */
import type * as ChatSchema from "../../ChatSchema.js"
import * as Duration from "effect/Duration"
import * as EmbeddingVectors from "../../internal/embeddingVectors.js"
import type { JsonContentOptions, Latency } from "../MockServer.js"

/** A small seeded generator (mulberry32): uniform in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Draws a delay in milliseconds for each request. */
export const latencySampler = (latency: Latency, random: () => number): (() => number) => {
  if (typeof latency === "object" && latency !== null && "uniform" in latency) {
    const lo = Duration.toMillis(latency.uniform[0])
    const hi = Duration.toMillis(latency.uniform[1])
    return () => lo + (hi - lo) * random()
  }
  if (typeof latency === "object" && latency !== null && "logNormal" in latency) {
    const median = Duration.toMillis(latency.logNormal.median)
    const sigma = latency.logNormal.sigma
    return () => {
      // Box-Muller: a standard normal from two uniforms.
      const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
      return median * Math.exp(sigma * z)
    }
  }
  const fixed = Duration.toMillis(latency as Duration.DurationInput)
  return () => fixed
}

/** FNV-1a, 32 bits. */
export const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Token counts as the real API reports them (gpt-tokenizer, the client's own estimator). */
export { contentText, countTokens, promptTokens } from "../../internal/tokens.js"
import { contentText, countTokens, promptTokens } from "../../internal/tokens.js"
import { answerFromToolResults, toolCalls, toolsToCall } from "./toolCalls.js"

const lastUserText = (messages: ReadonlyArray<ChatSchema.ChatMessage>): string => {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!
    if (message.role === "user") return contentText(message.content)
  }
  return ""
}

const words = (text: string): Array<string> => text.toLowerCase().match(/[a-z0-9]+/g) ?? []

/**
 * The complete sentences of a text, in order: its lines split after `.`, `!` or `?`; fragments that
 * do not end so (headings, "Document kb-01:") are left out.
 */
export const sentences = (text: string): Array<string> =>
  text
    .split("\n")
    .flatMap((line) => line.split(/(?<=[.!?])\s+(?=[A-Z0-9"'(])/))
    .map((s) => s.trim())
    .filter((s) => /[.!?]$/.test(s) && /[A-Za-z]/.test(s))

/**
 * What the mock "model" says the prompt is about: its first two complete sentences; for a prompt
 * without one, the prompt itself (its first 20 words) as a sentence.
 */
export const summaryOf = (prompt: string): string => {
  const found = sentences(prompt)
  if (found.length > 0) return found.slice(0, 2).join(" ")
  const text = prompt.trim().split(/\s+/).slice(0, 20).join(" ").replace(/[\s,;:]+$/, "")
  return text === "" ? "Nothing to summarise." : `${text[0]!.toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? "" : "."}`
}

/** The JSON object the mock "model" answers with, built from the prompt. */
export const jsonAnswer = (prompt: string, h: number) => {
  const w = words(prompt)
  return {
    answer_id: h.toString(16).padStart(8, "0"),
    summary: summaryOf(prompt),
    keywords: [...new Set(w.filter((x) => x.length > 3))].slice(0, 3),
    sentiment: ["positive", "neutral", "negative"][h % 3],
    score: (h % 100) / 100
  }
}

/**
 * A value that conforms to a JSON Schema (as `response_format.json_schema.schema` carries it), built
 * from the prompt: properties named like `jsonAnswer`'s take its values when the types agree; other
 * strings are the prompt's sentences after the two of the summary, in order (or, for a prompt with
 * fewer, runs of its words); arrays have up to 3 items. Handles `$ref` into `$defs`, `enum`, `const`,
 * `anyOf`/`oneOf` (first non-null branch) and every JSON type.
 */
export const valueForSchema = (schema: unknown, prompt: string, h: number): unknown => {
  const root = (typeof schema === "object" && schema !== null ? schema : {}) as Record<string, unknown>
  const base = jsonAnswer(prompt, h) as Record<string, unknown>
  const w = words(prompt)
  const rest = sentences(prompt).slice(2)
  let counter = 0
  const phrase = () => {
    if (rest.length > 0) return rest[counter++ % rest.length]!
    const start = w.length === 0 ? 0 : (h + 5 * counter++) % w.length
    const picked = w.slice(start, start + 6)
    return picked.length === 0 ? "mock" : picked.join(" ")
  }
  const fits = (value: unknown, type: unknown) =>
    type === "string" ? typeof value === "string" : type === "number" ? typeof value === "number" : type === "array" ? Array.isArray(value) : false
  const build = (node: unknown, name: string | undefined, depth: number): unknown => {
    if (depth > 12 || typeof node !== "object" || node === null) return null
    let s = node as Record<string, unknown>
    const ref = s["$ref"]
    if (typeof ref === "string" && ref.startsWith("#/$defs/")) {
      const defs = (root["$defs"] ?? {}) as Record<string, unknown>
      return build(defs[ref.slice("#/$defs/".length)], name, depth + 1)
    }
    if ("const" in s) return s["const"]
    if (Array.isArray(s["enum"]) && s["enum"].length > 0) return s["enum"][h % s["enum"].length]
    const branches = (s["anyOf"] ?? s["oneOf"]) as ReadonlyArray<Record<string, unknown>> | undefined
    if (Array.isArray(branches) && branches.length > 0) {
      s = branches.find((b) => b["type"] !== "null") ?? branches[0]!
      return build(s, name, depth + 1)
    }
    const declared = s["type"]
    const type = Array.isArray(declared) ? declared.find((t) => t !== "null") : declared ?? (s["properties"] !== undefined ? "object" : undefined)
    if (name !== undefined && Object.hasOwn(base, name) && fits(base[name], type)) return base[name]
    switch (type) {
      case "object": {
        const out: Record<string, unknown> = {}
        for (const [key, child] of Object.entries((s["properties"] ?? {}) as Record<string, unknown>)) out[key] = build(child, key, depth + 1)
        return out
      }
      case "array": {
        const min = typeof s["minItems"] === "number" ? s["minItems"] : 0
        const max = typeof s["maxItems"] === "number" ? s["maxItems"] : 3
        const n = Math.max(min, Math.min(3, max))
        return Array.from({ length: n }, () => build(s["items"] ?? { type: "string" }, undefined, depth + 1))
      }
      case "string":
        return phrase()
      case "integer":
        return h % 100
      case "number":
        return (h % 100) / 100
      case "boolean":
        return h % 2 === 0
      default:
        return null
    }
  }
  return build(root, undefined, 0)
}

/** Writes JSON text with the defects asked for. */
export const writeJson = (value: unknown, options: JsonContentOptions): string => {
  let text = JSON.stringify(value, null, 2)
  if (options.trailingComma === true) text = text.replace(/(\S)(\n\s*[}\]])/g, "$1,$2")
  if (options.truncate === true) text = text.slice(0, Math.floor(text.length * 0.6))
  if (options.fence === true) text = "```json\n" + text + (options.truncate === true ? "" : "\n```")
  if (options.prose === true) text = "Here is the JSON you asked for:\n" + text + (options.truncate === true ? "" : "\nLet me know if you need anything else.")
  return text
}

const wantsJson = (request: ChatSchema.ChatCompletionRequest): boolean =>
  request.response_format?.type === "json_object" || request.response_format?.type === "json_schema"

/**
 * For a request whose system message holds documents each under a `[docId]` line (as `Rag.answer`
 * sends them): the sentence of the first document that shares the most words with the question,
 * cited as `[docId]`. Undefined for any other request.
 */
export const answerFromDocuments = (messages: ReadonlyArray<ChatSchema.ChatMessage>, question: string): string | undefined => {
  const system = messages.find((m) => m.role === "system")
  if (system === undefined) return undefined
  const text = contentText(system.content)
  const first = /^\[([^\]\n]+)\]\n([\s\S]*?)(?=\n\n\[[^\]\n]+\]\n|(?![\s\S]))/m.exec(text)
  if (first === null) return undefined
  const wanted = new Set(words(question).filter((w) => w.length > 3))
  let best: string | undefined
  let bestScore = -1
  for (const sentence of sentences(first[2]!)) {
    const score = words(sentence).filter((w) => wanted.has(w)).length
    if (score > bestScore) {
      best = sentence
      bestScore = score
    }
  }
  return best === undefined ? undefined : `${best.replace(/[.!?]$/, "")} [${first[1]}].`
}

/**
 * A chat completion answering the request; the same request gives the same content. A request that
 * offers tools gets tool calls as `toolCalls.ts` decides; after tool results, a text quoting them.
 */
export const completion = (
  request: ChatSchema.ChatCompletionRequest,
  jsonContent: JsonContentOptions | undefined,
  seq: number
): ChatSchema.ChatCompletion => {
  const prompt = lastUserText(request.messages)
  const h = hash(request.model + "\u0000" + JSON.stringify(request.messages))
  const promptCount = promptTokens(request.messages)
  const limit = request.max_completion_tokens ?? request.max_tokens ?? undefined
  const n = request.n ?? 1
  const choices: Array<ChatSchema.Choice> = []
  let completionTokens = 0
  const calling = toolsToCall(request)
  for (let index = 0; index < n; index++) {
    const hi = index === 0 ? h : hash(`${h}:${index}`)
    if (calling.length > 0) {
      const calls = toolCalls(calling, prompt, hi)
      for (const call of calls) completionTokens += countTokens(call.function.name + call.function.arguments)
      choices.push({ index, message: { role: "assistant", content: null, refusal: null, tool_calls: calls }, finish_reason: "tool_calls", logprobs: null })
      continue
    }
    const format = request.response_format
    const schema = format?.type === "json_schema" ? format.json_schema.schema : undefined
    const json = wantsJson(request) || (jsonContent !== undefined && jsonContent.onlyWhenAsked !== true)
    let text = json
      ? writeJson(schema === undefined ? jsonAnswer(prompt, hi) : valueForSchema(schema, prompt, hi), jsonContent ?? {})
      : answerFromToolResults(request.messages, hi) ??
        answerFromDocuments(request.messages, prompt) ??
        `Mock answer ${hi.toString(16).padStart(8, "0")}: you said "${prompt.slice(0, 80)}". ` +
        "Shepherd's mock server repeats the gist of the prompt so that tests can check what was sent."
    let finish = "stop"
    if (limit !== undefined && limit !== null && countTokens(text) > limit) {
      // Cut to about `limit` tokens (4 characters each), never more.
      text = text.slice(0, Math.max(0, limit * 4))
      while (text.length > 0 && countTokens(text) > limit) text = text.slice(0, -4)
      finish = "length"
    }
    completionTokens += countTokens(text)
    choices.push({ index, message: { role: "assistant", content: text, refusal: null }, finish_reason: finish, logprobs: null })
  }
  return {
    id: `chatcmpl-mock-${seq}`,
    object: "chat.completion",
    created: 1_700_000_000 + seq,
    model: request.model,
    choices,
    usage: {
      prompt_tokens: promptCount,
      completion_tokens: completionTokens,
      total_tokens: promptCount + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
    },
    system_fingerprint: "fp_mock",
    service_tier: "default"
  }
}

/**
 * Deterministic unit-length vectors, one per input: number arrays, or with `encoding_format: "base64"`
 * the base64 of their little-endian float32 bytes, as OpenAI sends them.
 */
export const embeddings = (request: ChatSchema.EmbeddingRequest): ChatSchema.EmbeddingResponseEncoded => {
  const inputs: ReadonlyArray<unknown> = typeof request.input === "string" ? [request.input] : request.input
  const dimensions = request.dimensions ?? 16
  const base64 = request.encoding_format === "base64"
  let tokens = 0
  const data = inputs.map((input, index) => {
    const text = typeof input === "string" ? input : JSON.stringify(input)
    tokens += typeof input === "string" ? countTokens(input) : Array.isArray(input) ? input.length : 1
    const next = mulberry32(hash(text))
    const raw = Array.from({ length: dimensions }, () => next() * 2 - 1)
    const norm = Math.sqrt(raw.reduce((s, x) => s + x * x, 0)) || 1
    const vector = raw.map((x) => x / norm)
    return { object: "embedding" as const, index, embedding: base64 ? EmbeddingVectors.encodeBase64(Float32Array.from(vector)) : vector }
  })
  return { object: "list", model: request.model, data, usage: { prompt_tokens: tokens, total_tokens: tokens } }
}

/** What `GET /v1/models` lists. */
export const models = {
  object: "list",
  data: ["gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"].map((id) => ({
    id,
    object: "model",
    created: 1_700_000_000,
    owned_by: "mock"
  }))
}

/**
 * A completion as the chunks OpenAI streams: per choice, a first chunk with the role, each tool call
 * (a chunk with its index, id and name, then its arguments `chunkChars` characters at a time), the
 * content `chunkChars` characters at a time, a last chunk with the finish reason; with
 * `stream_options.include_usage`, `usage: null` on each and a final chunk with no choices and the usage.
 */
export const streamChunks = (
  request: ChatSchema.ChatCompletionRequest,
  completion: ChatSchema.ChatCompletion,
  chunkChars: number
): Array<ChatSchema.ChatCompletionChunk> => {
  const includeUsage = request.stream_options?.include_usage === true
  const base = {
    id: completion.id,
    object: "chat.completion.chunk",
    created: completion.created,
    model: completion.model,
    system_fingerprint: completion.system_fingerprint ?? null,
    service_tier: completion.service_tier ?? null,
    ...(includeUsage ? { usage: null } : {})
  }
  const chunk = (index: number, delta: ChatSchema.ChunkDelta, finish: string | null): ChatSchema.ChatCompletionChunk => ({
    ...base,
    choices: [{ index, delta, finish_reason: finish, logprobs: null }]
  })
  const out: Array<ChatSchema.ChatCompletionChunk> = []
  const size = Math.max(1, Math.floor(chunkChars))
  for (const choice of completion.choices) {
    const calls = choice.message.tool_calls ?? []
    out.push(chunk(choice.index, { role: "assistant", content: calls.length > 0 ? null : "", refusal: null }, null))
    // A call's first piece has its id and name; the next ones add to its arguments.
    calls.forEach((call, k) => {
      if (call.type !== "function") return
      out.push(chunk(choice.index, { tool_calls: [{ index: k, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] }, null))
      const args = call.function.arguments
      for (let i = 0; i < args.length; i += size) out.push(chunk(choice.index, { tool_calls: [{ index: k, function: { arguments: args.slice(i, i + size) } }] }, null))
    })
    const text = choice.message.content ?? ""
    for (let i = 0; i < text.length; i += size) out.push(chunk(choice.index, { content: text.slice(i, i + size) }, null))
    out.push(chunk(choice.index, {}, choice.finish_reason ?? "stop"))
  }
  if (includeUsage && completion.usage !== undefined && completion.usage !== null) out.push({ ...base, choices: [], usage: completion.usage })
  return out
}
