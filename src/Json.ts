/**
 * Lenient JSON for model output: the intended value of an answer that is "almost JSON" (fenced,
 * wrapped in prose, with trailing commas, single quotes, Python literals, comments, or cut off at
 * `max_tokens`), and a precise, typed reason when there is none.
 *
 * Order of attempts: strict `JSON.parse` of the whole text; then each candidate — fenced blocks
 * (```json, ``` with any tag, ~~~, an unclosed fence at the end), the balanced `{...}` or `[...]` found
 * by a string-aware scan (the first one, then the next after each that fails), the whole text — strict first, then through `jsonrepair`.
 * `recovery` says how the value was obtained, so a caller can refuse a truncated answer.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { jsonrepair } from "jsonrepair"
import { quickRepair } from "./internal/quickRepair.js"
import * as Validate from "./internal/validate.js"

/** How a value was recovered. */
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

/** A recovered value and how it was recovered. */
export interface JsonResult {
  readonly value: unknown
  readonly recovery: Recovery
}

/** No JSON value could be recovered, and why. */
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

/** Limits. */
export interface Options {
  /** Largest input, in UTF-8 bytes: a whole number of at least 1. @default 33554432 (32 MB) */
  readonly maxBytes: number
  /** Deepest nesting of arrays and objects: a whole number of at least 1. @default 1000 */
  readonly maxDepth: number
}

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

interface Scan {
  /** Deepest nesting seen. */
  readonly maxDepth: number
  /** Where the nesting first went past the limit, if it did. */
  readonly tooDeepAt: number | undefined
}

/** One string-aware pass: the deepest nesting of `{`/`[` outside strings (quotes " and '). */
const scanDepth = (text: string, limit: number): Scan => {
  let depth = 0
  let max = 0
  let quote = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (quote !== 0) {
      if (c === 92 /* \ */) i++
      else if (c === quote) quote = 0
      continue
    }
    if (c === 34 /* " */) quote = c
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      depth++
      if (depth > max) {
        max = depth
        if (max > limit) return { maxDepth: max, tooDeepAt: i }
      }
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (depth > 0) depth--
    }
  }
  return { maxDepth: max, tooDeepAt: undefined }
}

const strict = (text: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(text))
  } catch (e) {
    return Either.left(e instanceof Error ? e.message : String(e))
  }
}

/** The contents of fenced blocks, in order; an unclosed fence at the end counts (truncated answers). */
export const fencedBlocks = (text: string): Array<string> => {
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
 * strings do not count); when the text ends first, the rest of the text from the opening bracket.
 */
export const firstBalanced = (text: string, from = 0): { readonly text: string; readonly start: number; readonly closed: boolean } | undefined => {
  const found = text.slice(from).search(/[{[]/)
  if (found === -1) return undefined
  const open = from + found
  let depth = 0
  let quote = 0
  for (let i = open; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (quote !== 0) {
      if (c === 92) i++
      else if (c === quote) quote = 0
      continue
    }
    if (c === 34) quote = c
    else if (c === 123 || c === 91) depth++
    else if (c === 125 || c === 93) {
      depth--
      if (depth === 0) return { text: text.slice(open, i + 1), start: open, closed: true }
    }
  }
  return { text: text.slice(open), start: open, closed: false }
}

/** Whether a candidate ends inside a string or with brackets open: then repairing it means completing it. */
const isCut = (text: string): boolean => {
  let depth = 0
  let quote = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (quote !== 0) {
      if (c === 92) i++
      else if (c === quote) quote = 0
      continue
    }
    if (c === 34 || c === 39) quote = c
    else if (c === 123 || c === 91) depth++
    else if (c === 125 || c === 93) depth--
  }
  return depth > 0 || quote !== 0
}

/** A candidate that does not start like a JSON value is not repaired (prose would become a string). */
const looksLikeJson = (text: string): boolean => /^\s*(?:[{["'\d-]|true\b|false\b|null\b|True\b|False\b|None\b)/.test(text)

const repair = (candidate: string): Either.Either<JsonResult, string> => {
  if (!looksLikeJson(candidate)) return Either.left("does not start like a JSON value")
  // The linear pass first; jsonrepair (quadratic on some inputs) only for what it does not fix.
  const quick = quickRepair(candidate)
  if (quick !== undefined) {
    const value = strict(quick.text)
    if (Either.isRight(value)) return Either.right({ value: value.right, recovery: quick.truncated ? "truncated" : "repaired" })
  }
  let repaired: string
  try {
    repaired = jsonrepair(candidate)
  } catch (e) {
    return Either.left(e instanceof Error ? e.message : String(e))
  }
  return Either.map(strict(repaired), (value) => ({ value, recovery: isCut(candidate) ? "truncated" as const : "repaired" as const }))
}

/** `parse` without the Effect: the recovered value, or why there is none. Never throws. */
export const parseEither = (text: string, options: Partial<Options> = {}): Either.Either<JsonResult, JsonParseError> => {
  const { maxBytes, maxDepth } = { ...defaults, ...options }
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text, "utf8") > maxBytes)) {
    return fail("too_large", `the text is larger than ${maxBytes} bytes`, text, maxBytes)
  }
  if (text.trim() === "") return fail("empty", "the text is empty", text)
  const depth = scanDepth(text, maxDepth)
  if (depth.tooDeepAt !== undefined) return fail("too_deep", `nesting deeper than ${maxDepth} levels`, text, depth.tooDeepAt)

  const whole = strict(text)
  if (Either.isRight(whole)) return Either.right({ value: whole.right, recovery: "strict" })

  let lastProblem = whole.left
  for (const block of fencedBlocks(text)) {
    const exact = strict(block)
    if (Either.isRight(exact)) return Either.right({ value: exact.right, recovery: "fenced" })
    const repaired = repair(block)
    if (Either.isRight(repaired)) return Either.right(repaired.right)
    lastProblem = repaired.left
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
    const repaired = repair(candidate.text)
    if (Either.isRight(repaired)) return Either.right(repaired.right)
    lastProblem = repaired.left
  }
  const repairedWhole = repair(text)
  if (Either.isRight(repairedWhole)) return Either.right(repairedWhole.right)
  if (candidates.length === 0 && fencedBlocks(text).length === 0 && !looksLikeJson(text)) {
    return fail("no_json", "no JSON found: no fenced block, no { or [, and the text does not start like a JSON value", text)
  }
  const position = /position (\d+)/.exec(whole.left)
  return fail("no_json", `${lastProblem}`, text, position === null ? undefined : Number(position[1]))
}

/** Recovers the JSON value of `text`; see the module comment for the order of attempts. */
export const parse = (text: string, options: Partial<Options> = {}): Effect.Effect<JsonResult, JsonParseError> =>
  Effect.suspend(() => parseEither(text, options))
