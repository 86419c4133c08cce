/**
 * A chat completion as @effect/ai's response parts: response metadata, text (its JSON recovered
 * leniently when JSON was asked for), tool calls with their ids, and a finish part with the usage and
 * Shepherd's metadata (request id, attempts, latency, cost).
 * @internal
 */
import * as AiError from "@effect/ai/AiError"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ChatClient from "../../ChatClient.js"
import type * as ChatSchema from "../../ChatSchema.js"
import * as Json from "../../Json.js"
import * as Pricing from "../../Pricing.js"

const MODULE = "ShepherdLanguageModel"

const finishReasons: Readonly<Record<string, Response.FinishReason>> = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  tool_calls: "tool-calls",
  function_call: "tool-calls",
  error: "error"
}

/** A chat-completions `finish_reason` as @effect/ai's: a reason it does not know is `"other"`, none is `"unknown"`. */
export const finishReason = (reason: string | null | undefined): Response.FinishReason =>
  reason === null || reason === undefined ? "unknown" : finishReasons[reason] ?? "other"

/** Reported token counts as @effect/ai's `Usage` (all undefined when the server reported none). */
export const usageOf = (usage: ChatSchema.CompletionUsage | null | undefined): typeof Response.Usage.Encoded => ({
  inputTokens: usage?.prompt_tokens,
  outputTokens: usage?.completion_tokens,
  totalTokens: usage?.total_tokens,
  ...(usage?.completion_tokens_details?.reasoning_tokens === undefined ? {} : { reasoningTokens: usage.completion_tokens_details.reasoning_tokens }),
  ...(usage?.prompt_tokens_details?.cached_tokens === undefined ? {} : { cachedInputTokens: usage.prompt_tokens_details.cached_tokens })
})

/** What the call cost at the default price table, in micro-dollars; undefined for an unpriced model or no usage. */
export const costOf = (model: string, usage: ChatSchema.CompletionUsage | null | undefined): number | undefined =>
  usage === null || usage === undefined ? undefined : Option.getOrUndefined(Pricing.cost(model, usage))

/**
 * A tool call's arguments: strict JSON, else Shepherd's lenient recovery (a model's trailing comma
 * does not fail the call); either way checked for `__proto__` / `constructor.prototype` keys.
 */
export const toolParams = (name: string, text: string): Either.Either<unknown, AiError.MalformedOutput> => {
  const source = text.trim() === "" ? "{}" : text
  const secure = (json: string) => Either.try({ try: () => Tool.unsafeSecureJsonParse(json), catch: (cause) => cause })
  return Either.orElse(secure(source), () =>
    Either.flatMap(
      Either.mapLeft(Json.parseEither(source), (cause): unknown => cause),
      // Arguments recovered from a cut-off call would run the tool with values the model did not give.
      (result) => result.recovery === "truncated" ? Either.left("the arguments were cut off") : secure(JSON.stringify(result.value))
    )).pipe(Either.mapLeft((cause) =>
      new AiError.MalformedOutput({
        module: MODULE,
        method: "makeResponse",
        description: `the arguments of the call of tool ${name} are not JSON: ${text.slice(0, 200)}`,
        cause
      })
    ))
}

/** Text of a JSON answer: the recovered value as strict JSON, and how it was recovered (none: left as written). */
export const recoverJson = (text: string): { readonly text: string; readonly recovery: Json.Recovery | undefined } => {
  const parsed = Json.parseEither(text)
  if (Either.isLeft(parsed)) return { text, recovery: undefined }
  return { text: parsed.right.recovery === "strict" ? text : JSON.stringify(parsed.right.value), recovery: parsed.right.recovery }
}

/** Shepherd's metadata of a whole answer. */
const shepherdMetadata = (result: ChatClient.ChatResult, recovery: Json.Recovery | undefined) => ({
  requestId: result.requestId,
  attempts: result.attempts,
  status: result.status,
  latencyMillis: result.latencyMillis,
  // A cached answer was not paid for (as Batch reports it: cost 0).
  costMicroUsd: result.cached === true ? 0 : costOf(result.completion.model, result.completion.usage),
  ...(recovery === undefined ? {} : { recovery })
})

/**
 * The parts of a completion's first choice. With `json`, the text is recovered (`Json.parse`:
 * fences, prose, repairs) before @effect/ai decodes it; how is in the text part's and the finish
 * part's `metadata.shepherd.recovery` (`strict`, `fenced`, `extracted`, `repaired`, `truncated`).
 */
export const makeResponse = (
  result: ChatClient.ChatResult,
  json: boolean
): Either.Either<Array<Response.PartEncoded>, AiError.MalformedOutput> =>
  Either.gen(function* () {
    const { completion } = result
    const choice = completion.choices[0]
    if (choice === undefined) {
      return yield* Either.left(new AiError.MalformedOutput({ module: MODULE, method: "makeResponse", description: "the completion has no choices" }))
    }
    const parts: Array<Response.PartEncoded> = [{
      type: "response-metadata",
      id: completion.id,
      modelId: completion.model,
      timestamp: new Date(completion.created * 1000).toISOString()
    }]
    const message = choice.message
    let recovery: Json.Recovery | undefined
    if (message.content !== null && message.content.length > 0) {
      const recovered = json ? recoverJson(message.content) : { text: message.content, recovery: undefined }
      recovery = recovered.recovery
      parts.push({
        type: "text",
        text: recovered.text,
        ...(recovery === undefined ? {} : { metadata: { shepherd: { recovery, rawText: message.content } } })
      })
    }
    if (typeof message.refusal === "string" && message.refusal.length > 0) {
      parts.push({ type: "text", text: message.refusal, metadata: { shepherd: { refusal: true } } })
    }
    for (const call of message.tool_calls ?? []) {
      if (call.type !== "function") continue
      const params = yield* toolParams(call.function.name, call.function.arguments)
      parts.push({ type: "tool-call", id: call.id, name: call.function.name, params })
    }
    parts.push({
      type: "finish",
      reason: finishReason(choice.finish_reason),
      usage: usageOf(completion.usage),
      metadata: { shepherd: shepherdMetadata(result, recovery) }
    })
    return parts
  })
