/**
 * Lenient JSON for model output: the intended value of an answer that is "almost JSON" (fenced,
 * wrapped in prose, with trailing commas, single quotes, Python literals, comments, or cut off at
 * `max_tokens`), and a precise, typed reason when there is none.
 *
 * Order of attempts: strict `JSON.parse` of the whole text; then each candidate — fenced blocks
 * (```json, ``` with any tag, ~~~, an unclosed fence at the end), the balanced `{...}` or `[...]` found
 * by a string-aware scan (the first one, then the next after each that fails), the whole text — strict first, then through `jsonrepair`.
 * `recovery` says how the value was obtained, so a caller can refuse a truncated answer. No value
 * nested deeper than `maxDepth` comes out, whichever attempt produced it (`too_deep`).
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { jsonrepair } from "jsonrepair"
import { scanDepth, skipQuoted, withinDepth } from "./internal/jsonScan.js"
import { parseJson } from "./internal/jsonText.js"
import { quickRepair } from "./internal/quickRepair.js"
import * as Validate from "./internal/validate.js"

/**
 * How a value was recovered.
 *
 * @since 0.1.0
 * @category models
 */
export type Recovery =
  /** The whole text was strict JSON. */
  | "strict"
  /** A fenced block was strict JSON. */
  | "fenced"
  /** A balanced object or array inside prose was strict JSON. */
  | "extracted"
  /** Defects were repaired (trailing commas, quotes, comments, Python literals, ...). */
  | "repaired"
  /** The text was cut off: closing brackets (or a closing quote) had to be added. */
  | "truncated"

/**
 * A recovered value and how it was recovered.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonResult {
  readonly value: unknown
  readonly recovery: Recovery
}

/**
 * No JSON value could be recovered, and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class JsonParseError extends Schema.TaggedError<JsonParseError>()("JsonParseError", {
  /**
   * - `empty`: nothing but whitespace
   * - `no_json`: no candidate looked like JSON, or none could be repaired
   * - `too_large`: longer than `maxBytes`
   * - `too_deep`: nested deeper than `maxDepth`
   * - `deadline`: the parse took longer than its deadline
   * - `worker_failed`: the worker parsing it crashed or ran out of memory (the pool replaces it)
   */
  reason: Schema.Literal("empty", "no_json", "too_large", "too_deep", "deadline", "worker_failed"),
  /** What went wrong, in words. */
  detail: Schema.String,
  /** Character offset of the problem, when known. */
  position: Schema.optional(Schema.Number),
  /** At most 200 characters of the text around the problem. */
  excerpt: Schema.String
}) {
  override get message(): string {
    const at = this.position === undefined ? "" : ` at character ${this.position}`
    return `no JSON value could be recovered (${this.reason})${at}: ${this.detail}. Near: ${JSON.stringify(this.excerpt)}`
  }
}

/**
 * Limits of a parse. Every default is in {@link defaults}.
 *
 * @since 0.1.0
 * @category options
 */
export interface Options {
  /** Largest input, in UTF-8 bytes: a whole number of at least 1. @default 33554432 (32 MB) */
  readonly maxBytes: number
  /** Deepest nesting of arrays and objects: a whole number of at least 1. @default 1000 */
  readonly maxDepth: number
}

/**
 * The default limits: 32 MB and 1000 levels.
 *
 * @since 0.1.0
 * @category options
 */
export const defaults: Options = { maxBytes: 32 * 1024 * 1024, maxDepth: 1000 }

/**
 * Checks the limits (`JsonParser.layer` does when it is built): a `ConfigError` naming the option
 * under `path`, e.g. `["maxDepth"]`. A limit that is not a whole number would switch its check off.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateOptions = (options: Partial<Options>, path: ReadonlyArray<string> = []): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (options.maxBytes !== undefined) yield* Validate.positiveInt([...path, "maxBytes"], options.maxBytes)
    if (options.maxDepth !== undefined) yield* Validate.positiveInt([...path, "maxDepth"], options.maxDepth)
  })

const EXCERPT = 200

const excerptAt = (text: string, position: number | undefined): string => {
  const at = position ?? 0
  const start = Math.max(0, Math.min(at - EXCERPT / 2, text.length - EXCERPT))
  return text.slice(start, start + EXCERPT)
}

const fail = (reason: JsonParseError["reason"], detail: string, text: string, position?: number): Either.Either<never, JsonParseError> =>
  Either.left(new JsonParseError({ reason, detail, excerpt: excerptAt(text, position), ...(position === undefined ? {} : { position }) }))

const strict = parseJson

/** The contents of fenced blocks, in order; an unclosed fence at the end counts (truncated answers). */
const fencedBlocks = (text: string): Array<string> => {
  const blocks: Array<string> = []
  const fence = /(^|\n)[ \t]*(```|~~~)[^\n]*\n/g
  let match: RegExpExecArray | null
  while ((match = fence.exec(text)) !== null) {
    const start = match.index + match[0].length
    const marker = match[2]!
    const close = text.indexOf(`\n${marker}`, start - 1)
    if (close === -1) {
      blocks.push(text.slice(start))
      break
    }
    blocks.push(text.slice(start, close))
    fence.lastIndex = close + 1 + marker.length
  }
  return blocks
}

/** Balanced candidates tried inside prose, at most: each one is a scan of the rest of the text. */
const MAX_CANDIDATES = 16

/**
 * The first `{...}` or `[...]` at or after `from` whose brackets balance, found by a string-aware scan (brackets inside
 * strings and comments do not count, `skipQuoted`); when the text ends first, the rest of the text from the opening bracket.
 */
const firstBalanced = (text: string, from = 0): { readonly text: string; readonly start: number; readonly closed: boolean } | undefined => {
  const found = text.slice(from).search(/[{[]/)
  if (found === -1) return undefined
  const open = from + found
  let depth = 0
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 123 || c === 91) depth++
    else if (c === 125 || c === 93) {
      depth--
      if (depth === 0) return { text: text.slice(open, i + 1), start: open, closed: true }
    } else {
      const end = skipQuoted(text, i)
      if (end !== -1) i = end
    }
  }
  return { text: text.slice(open), start: open, closed: false }
}

/** Whether a candidate ends inside a string or comment or with brackets open: then repairing it means completing it. */
const isCut = (text: string): boolean => {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 123 || c === 91) depth++
    else if (c === 125 || c === 93) depth--
    else {
      const end = skipQuoted(text, i)
      // Cut inside a string or a block comment (a line comment may end the text).
      if (end === text.length && !(c === 47 && text.charCodeAt(i + 1) === 47)) return true
      if (end !== -1) i = end
    }
  }
  return depth > 0
}

/** A candidate that does not start like a JSON value is not repaired (prose would become a string). */
const looksLikeJson = (text: string): boolean => /^\s*(?:[{["'\d-]|true\b|false\b|null\b|True\b|False\b|None\b)/.test(text)

/** Why a candidate could not be repaired; `tooDeep` when jsonrepair ran out of stack on its nesting. */
interface Problem {
  readonly detail: string
  readonly tooDeep: boolean
}

/** How a candidate is repaired: whole answers complete a cut key; prefixes of a stream leave it out. */
type Mode = "whole" | "prefix"

const repair = (candidate: string, mode: Mode): Either.Either<JsonResult, Problem> => {
  if (!looksLikeJson(candidate)) return Either.left({ detail: "does not start like a JSON value", tooDeep: false })
  // The linear pass first; jsonrepair (quadratic on some inputs) only for what it does not fix.
  const quick = quickRepair(candidate, { dropCutKey: mode === "prefix" })
  if (quick !== undefined) {
    const value = strict(quick.text)
    if (Either.isRight(value)) return Either.right({ value: value.right, recovery: quick.truncated ? "truncated" : "repaired" })
  }
  // jsonrepair completes a cut key ("keyw": null): a prefix it would have to repair gives no value.
  if (mode === "prefix") return Either.left({ detail: "the text so far is not JSON that the linear repair pass reads", tooDeep: false })
  let repaired: string
  try {
    repaired = jsonrepair(candidate)
  } catch (e) {
    // jsonrepair recurses once per level: nesting the depth scan did not see can exhaust the stack.
    return Either.left({ detail: e instanceof Error ? e.message : String(e), tooDeep: e instanceof RangeError })
  }
  return Either.mapBoth(strict(repaired), {
    onLeft: (detail) => ({ detail, tooDeep: false }),
    onRight: (value) => ({ value, recovery: isCut(candidate) ? "truncated" as const : "repaired" as const })
  })
}

/** The value of `text` by the attempts the module comment lists, or why there is none (no limits checked). */
const recover = (text: string, mode: Mode): Either.Either<JsonResult, JsonParseError> => {
  const whole = strict(text)
  if (Either.isRight(whole)) return Either.right({ value: whole.right, recovery: "strict" })

  let lastProblem = whole.left
  const tooDeep = (problem: Problem) => fail("too_deep", `nesting too deep to repair (${problem.detail})`, text)
  for (const block of fencedBlocks(text)) {
    const exact = strict(block)
    if (Either.isRight(exact)) return Either.right({ value: exact.right, recovery: "fenced" })
    const repaired = repair(block, mode)
    if (Either.isRight(repaired)) return Either.right(repaired.right)
    if (repaired.left.tooDeep) return tooDeep(repaired.left)
    lastProblem = repaired.left.detail
  }
  // Brackets in prose ("a {placeholder}") can come before the JSON: first look for a top-level
  // candidate that is strict JSON as it stands, then repair them in order.
  const candidates: Array<{ readonly text: string; readonly closed: boolean }> = []
  for (let from = 0; candidates.length < MAX_CANDIDATES;) {
    const balanced = firstBalanced(text, from)
    if (balanced === undefined) break
    candidates.push(balanced)
    if (balanced.closed) {
      const exact = strict(balanced.text)
      if (Either.isRight(exact)) return Either.right({ value: exact.right, recovery: "extracted" })
    }
    if (!balanced.closed) break
    // The next candidate starts after this one: a value nested inside it is part of it, not an answer.
    from = balanced.start + balanced.text.length
  }
  for (const candidate of candidates) {
    const repaired = repair(candidate.text, mode)
    if (Either.isRight(repaired)) return Either.right(repaired.right)
    if (repaired.left.tooDeep) return tooDeep(repaired.left)
    lastProblem = repaired.left.detail
  }
  const repairedWhole = repair(text, mode)
  if (Either.isRight(repairedWhole)) return Either.right(repairedWhole.right)
  if (repairedWhole.left.tooDeep) return tooDeep(repairedWhole.left)
  if (candidates.length === 0 && fencedBlocks(text).length === 0 && !looksLikeJson(text)) {
    return fail("no_json", "no JSON found: no fenced block, no { or [, and the text does not start like a JSON value", text)
  }
  const position = /position (\d+)/.exec(whole.left)
  return fail("no_json", `${lastProblem}`, text, position === null ? undefined : Number(position[1]))
}

/** The limits, then `recover`, then the depth of the value that came out, whatever produced it. */
const parseWith = (text: string, options: Partial<Options>, mode: Mode): Either.Either<JsonResult, JsonParseError> => {
  const { maxBytes, maxDepth } = { ...defaults, ...options }
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, "utf8") > maxBytes)) {
    return fail("too_large", `the text is larger than ${maxBytes} bytes`, text, maxBytes)
  }
  if (text.trim() === "") return fail("empty", "the text is empty", text)
  const depth = scanDepth(text, maxDepth)
  if (depth.tooDeepAt !== undefined) return fail("too_deep", `nesting deeper than ${maxDepth} levels`, text, depth.tooDeepAt)
  const result = recover(text, mode)
  // Strict JSON as a whole has no quote or comment the scan could misread: its depth is the scan's.
  // Any other value (a candidate inside prose, a repair) is walked.
  if (Either.isRight(result) && result.right.recovery !== "strict" && !withinDepth(result.right.value, maxDepth)) {
    return fail("too_deep", `nesting deeper than ${maxDepth} levels`, text)
  }
  return result
}

/**
 * `parse` without the Effect: the recovered value, or why there is none. Never throws.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseEither = (text: string, options: Partial<Options> = {}): Either.Either<JsonResult, JsonParseError> =>
  parseWith(text, options, "whole")

/**
 * The value of a prefix of an answer still being written (a stream): as `parseEither`, except that an
 * object key whose value has not begun (`{"summary": "…", "keyw`) is left out instead of being
 * completed with `null`, and only the linear repair pass is used (jsonrepair would complete the key):
 * a prefix it cannot read gives no value, and the next, longer one is tried.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parsePrefixEither = (text: string, options: Partial<Options> = {}): Either.Either<JsonResult, JsonParseError> =>
  parseWith(text, options, "prefix")

/**
 * Recovers the JSON value of `text`; see the module comment for the order of attempts.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string, options: Partial<Options> = {}): Effect.Effect<JsonResult, JsonParseError> =>
  Effect.suspend(() => parseEither(text, options))
