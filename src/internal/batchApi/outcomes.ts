/**
 * A finished batch's output and error files as `Batch.BatchOutcome`s: one per `custom_id` that has
 * a final answer; the ones with none are listed as unfinished: in neither file, answered with a
 * status worth sending again (429, 5xx, 408, 409, 401: `isResendableStatus`, the rule that makes an
 * output line final), or with an error code worth sending again (`batch_expired`, `batch_cancelled`,
 * `server_error`, `rate_limit_exceeded`, ...: `isResendableCode`).
 * @internal
 */
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Batch from "../../Batch.js"
import * as ChatError from "../../ChatError.js"
import * as ChatSchema from "../../ChatSchema.js"
import * as Pricing from "../../Pricing.js"
import * as EmbeddingVectors from "../embeddingVectors.js"
import { isResendableCode, isResendableStatus } from "../retryable.js"
import type { Item } from "./plan.js"
import * as JsonText from "../jsonText.js"

/** The outcomes of a range and the ids left without one. */
export interface Mapped {
  readonly outcomes: ReadonlyArray<Batch.BatchOutcome>
  readonly unfinished: ReadonlyArray<string>
}

interface OutputLine {
  readonly custom_id?: unknown
  readonly response?: { readonly status_code?: unknown; readonly request_id?: unknown; readonly body?: unknown } | null
  readonly error?: { readonly code?: unknown; readonly message?: unknown } | null
}

const isCompletion = Schema.is(ChatSchema.ChatCompletion)
const isEmbeddings = Schema.is(Schema.encodedSchema(ChatSchema.EmbeddingResponse))
const isErrorBody = Schema.is(ChatSchema.ErrorResponse)

const parseLines = (text: string | undefined): Array<OutputLine> => {
  if (text === undefined) return []
  const lines: Array<OutputLine> = []
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue
    // A damaged line is skipped: its id stays unfinished and is sent again.
    const value = Either.getOrUndefined(JsonText.parseJson(raw))
    if (typeof value === "object" && value !== null) lines.push(value as OutputLine)
  }
  return lines
}

/** The outcome of an answered request (2xx or an error status). */
const answered = (
  it: Item,
  response: NonNullable<OutputLine["response"]>,
  status: number,
  prices: Pricing.PriceTable,
  latencyMillis: number
): Batch.BatchOutcome => {
  const requestId = typeof response.request_id === "string" ? response.request_id : undefined
  const base = { custom_id: it.request.custom_id, index: it.index, attempts: 1, latencyMillis }
  const body = response.body
  if (status >= 200 && status < 300) {
    const model = it.request.body.model
    // A line asked for base64 carries its vectors as base64: decoded to Float32Arrays as `embed` does.
    const embeddings = it.request.url === "/v1/embeddings" && isEmbeddings(body) ? EmbeddingVectors.fromWire(body) : undefined
    if (embeddings !== undefined && Either.isRight(embeddings)) {
      const body = embeddings.right
      const usage = { prompt_tokens: body.usage.prompt_tokens, completion_tokens: 0 }
      return { ...base, _tag: "Success", url: "/v1/embeddings", requestId, status, embeddings: body, usage: { promptTokens: usage.prompt_tokens, completionTokens: 0 }, costMicroUsd: Pricing.batchCost(model, usage, prices) }
    }
    if (it.request.url !== "/v1/embeddings" && isCompletion(body)) {
      const usage = body.usage
      return {
        ...base,
        _tag: "Success",
        url: "/v1/chat/completions",
        requestId,
        status,
        completion: body,
        usage: { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 },
        costMicroUsd: usage == null ? Option.none() : Pricing.batchCost(model, usage, prices)
      }
    }
    const text = JSON.stringify(body) ?? ""
    return { ...base, _tag: "Failure", error: new ChatError.ResponseDecodeError({ status, detail: "the batch output's body is not the endpoint's response", bodyExcerpt: text.slice(0, 2048), requestId, attempts: 1 }) }
  }
  const server = isErrorBody(body) ? body.error : undefined
  const code = server?.code === undefined || server.code === null ? undefined : String(server.code)
  const detail = server?.message ?? (JSON.stringify(body) ?? "").slice(0, 2048)
  const error = status === 429
    ? new ChatError.RateLimitError({ detail, code, requestId, attempts: 1, ...(server === undefined ? {} : { serverError: server }) })
    : new ChatError.ApiError({ status, type: server?.type ?? undefined, code, param: server?.param ?? undefined, detail, requestId, attempts: 1, ...(server === undefined ? {} : { serverError: server }) })
  return { ...base, _tag: "Failure", error }
}

/**
 * Maps the lines of both files (already scrubbed of the key) to outcomes of `items`. A `custom_id`
 * the range does not hold is ignored; of two final lines for one `custom_id`, the first counts (a
 * final line wins over one worth sending again, in whichever order they come).
 */
export const map = (
  items: ReadonlyArray<Item>,
  output: string | undefined,
  errors: string | undefined,
  prices: Pricing.PriceTable,
  latencyMillis: number
): Mapped => {
  const byId = new Map(items.map((it) => [it.request.custom_id, it]))
  const done = new Set<string>()
  const outcomes: Array<Batch.BatchOutcome> = []
  for (const line of [...parseLines(output), ...parseLines(errors)]) {
    if (typeof line.custom_id !== "string" || done.has(line.custom_id)) continue
    const it = byId.get(line.custom_id)
    if (it === undefined) continue
    const response = line.response
    if (response !== null && response !== undefined && typeof response.status_code === "number") {
      // Not the request's answer, the provider's failure to give one: sent again by the next submit.
      if (isResendableStatus(response.status_code)) continue
      done.add(line.custom_id)
      outcomes.push(answered(it, response, response.status_code, prices, latencyMillis))
      continue
    }
    const code = typeof line.error?.code === "string" ? line.error.code : undefined
    if (code === undefined || isResendableCode(code)) continue
    // A failure with no HTTP answer (the provider's own error code, not one worth sending again): final,
    // as OpenAI reports it. Recorded as the provider refusing the request (400), so that its OUT line
    // is final too (`isFinal`: a 5xx line would be dropped by the rerun while this range holds the id
    // as done, and the id would never be sent again).
    done.add(line.custom_id)
    const message = typeof line.error?.message === "string" ? line.error.message : code
    outcomes.push({
      _tag: "Failure",
      custom_id: it.request.custom_id,
      index: it.index,
      attempts: 1,
      latencyMillis,
      error: new ChatError.ApiError({ status: 400, code, detail: message, attempts: 1 })
    })
  }
  const unfinished = items.filter((it) => !done.has(it.request.custom_id)).map((it) => it.request.custom_id)
  return { outcomes, unfinished }
}
