/**
 * The piscina worker behind `JsonParser`: runs `Json.parseEither` off the main thread and returns
 * plain data (classes do not survive the structured clone).
 */
import * as Either from "effect/Either"
import * as Json from "../src/Json.js"

export interface Task {
  readonly text: string
  readonly maxBytes: number
  readonly maxDepth: number
  /**
   * Shared with the main thread: set to 1 as the parse starts, so that its deadline counts the
   * parse and not a cold worker's start-up.
   */
  readonly started?: Int32Array | undefined
}

export type Reply =
  /**
   * The value as JSON text: the main thread parses it with JSON.parse, which costs it less than the
   * structured clone of the value (1 MB: 4.1 ms against 13.5 ms; 8 MB: 48 against 115; bench/json).
   */
  | { readonly _tag: "ok"; readonly json: string; readonly recovery: Json.Recovery }
  | {
    readonly _tag: "error"
    readonly reason: Json.JsonParseError["reason"]
    readonly detail: string
    readonly position: number | undefined
    readonly excerpt: string
  }

export default function parse(task: Task): Reply {
  if (task.started !== undefined) Atomics.store(task.started, 0, 1)
  const result = Json.parseEither(task.text, { maxBytes: task.maxBytes, maxDepth: task.maxDepth })
  if (Either.isRight(result)) {
    try {
      return { _tag: "ok", json: JSON.stringify(result.right.value), recovery: result.right.recovery }
    } catch (e) {
      // JSON.stringify recurses per level: with a maxDepth set beyond what its stack holds, the value
      // cannot be sent back. Said as the limit it is, not as a worker crash.
      return {
        _tag: "error",
        reason: "too_deep",
        detail: `the value is nested too deep to send back from the worker (${e instanceof Error ? e.message : String(e)}); lower maxDepth`,
        position: undefined,
        excerpt: task.text.slice(0, 200)
      }
    }
  }
  const { detail, excerpt, position, reason } = result.left
  return { _tag: "error", reason, detail, position, excerpt }
}
