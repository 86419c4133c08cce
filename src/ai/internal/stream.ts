/**
 * Streamed chat-completion chunks as @effect/ai's stream parts: response metadata at the first
 * chunk; text as start, deltas and end; each tool call as params start, deltas and end, then the
 * whole call (its arguments parsed) once the choice finishes; a finish part with the usage of the
 * usage chunk and the cost, when the stream ends.
 * @internal
 */
import type * as AiError from "@effect/ai/AiError"
import type * as Response from "@effect/ai/Response"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import type * as ChatSchema from "../../ChatSchema.js"
import { costOf, finishReason, toolParams, usageOf } from "./response.js"

interface ActiveCall {
  readonly id: string
  readonly name: string
  params: string
}

type Parts = Array<Response.StreamPartEncoded>

/** The state of one stream: what is open, what was seen. */
class Reader {
  private metadataSent = false
  private textId: string | undefined
  private nextId = 0
  private readonly calls = new Map<number, ActiveCall>()
  private reason: string | null = null
  private usage: ChatSchema.CompletionUsage | undefined
  private model = ""

  /** The parts one chunk adds. */
  read(chunk: ChatSchema.ChatCompletionChunk): Either.Either<Parts, AiError.MalformedOutput> {
    const parts: Parts = []
    if (!this.metadataSent) {
      this.metadataSent = true
      this.model = chunk.model
      parts.push({ type: "response-metadata", id: chunk.id, modelId: chunk.model, timestamp: new Date(chunk.created * 1000).toISOString() })
    }
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = chunk.usage
    const choice = chunk.choices.find((c) => c.index === 0)
    if (choice === undefined) return Either.right(parts)
    const { content, tool_calls } = choice.delta
    if (typeof content === "string" && content.length > 0) {
      if (this.textId === undefined) {
        this.textId = String(this.nextId++)
        parts.push({ type: "text-start", id: this.textId })
      }
      parts.push({ type: "text-delta", id: this.textId, delta: content })
    }
    for (const piece of tool_calls ?? []) this.readCall(piece, parts)
    if (choice.finish_reason !== null) {
      this.reason = choice.finish_reason
      return Either.map(this.endCalls(), (ended) => [...parts, ...ended])
    }
    return Either.right(parts)
  }

  private readCall(piece: ChatSchema.ToolCallChunk, parts: Parts): void {
    const args = piece.function?.arguments ?? ""
    const active = this.calls.get(piece.index)
    if (active === undefined) {
      this.endText(parts)
      // The first piece of a call carries its id and name.
      const call: ActiveCall = { id: piece.id ?? `call_${piece.index}`, name: piece.function?.name ?? "", params: args }
      this.calls.set(piece.index, call)
      parts.push({ type: "tool-params-start", id: call.id, name: call.name })
      if (args.length > 0) parts.push({ type: "tool-params-delta", id: call.id, delta: args })
      return
    }
    active.params += args
    if (args.length > 0) parts.push({ type: "tool-params-delta", id: active.id, delta: args })
  }

  private endText(parts: Parts): void {
    if (this.textId === undefined) return
    parts.push({ type: "text-end", id: this.textId })
    this.textId = undefined
  }

  /** Every open tool call ended and emitted whole, in index order. */
  private endCalls(): Either.Either<Parts, AiError.MalformedOutput> {
    const parts: Parts = []
    for (const [, call] of [...this.calls.entries()].sort(([a], [b]) => a - b)) {
      const params = toolParams(call.name, call.params)
      if (Either.isLeft(params)) return Either.left(params.left)
      parts.push({ type: "tool-params-end", id: call.id })
      parts.push({ type: "tool-call", id: call.id, name: call.name, params: params.right })
    }
    this.calls.clear()
    return Either.right(parts)
  }

  /** The parts that close the stream: open text and calls ended, then the finish part. */
  finish(): Either.Either<Parts, AiError.MalformedOutput> {
    const parts: Parts = []
    this.endText(parts)
    return Either.map(this.endCalls(), (ended) => [
      ...parts,
      ...ended,
      {
        type: "finish",
        reason: finishReason(this.reason),
        usage: usageOf(this.usage),
        metadata: { shepherd: { costMicroUsd: costOf(this.model, this.usage) } }
      }
    ])
  }
}

/** The stream parts of a stream of chunks. */
export const streamParts = <E>(
  chunks: Stream.Stream<ChatSchema.ChatCompletionChunk, E>
): Stream.Stream<Response.StreamPartEncoded, E | AiError.MalformedOutput> =>
  Stream.suspend(() => {
    const reader = new Reader()
    return chunks.pipe(
      Stream.mapEffect((chunk) => reader.read(chunk)),
      Stream.concat(Stream.suspend(() => Stream.fromEffect(reader.finish()))),
      Stream.flattenIterables
    )
  })
