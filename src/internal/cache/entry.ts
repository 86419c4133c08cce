/**
 * One stored answer as text: a header line with a SHA-256 of the rest, a metadata line and the
 * answer's JSON. A reader checks the hash before anything else, so an entry cut short or changed on
 * disk reads as a miss, never as a wrong answer or a crash.
 *
 *   shepherd-cache/1 <sha256 of the two lines below>
 *   {"endpoint":"chat","expiresAt":1700000000000,"requestId":"req_1","status":200}
 *   {"id":"chatcmpl-1", ...}
 * @internal
 */
import * as Either from "effect/Either"
import { sha256 } from "./key.js"
import * as JsonText from "../jsonText.js"

const MAGIC = "shepherd-cache/1 "

/** What an entry says besides the answer. */
export interface Meta {
  readonly endpoint: string
  /** Epoch ms after which the entry is a miss; null for never. */
  readonly expiresAt: number | null
  readonly requestId: string | null
  readonly status: number
}

/** A stored entry read back: its metadata and the answer's JSON text (decoded by the caller). */
export interface Read {
  readonly meta: Meta
  readonly value: string
}


/** The entry's text. */
export const encode = (meta: Meta, valueJson: string): string => {
  const body = `${JSON.stringify(meta)}\n${valueJson}`
  return `${MAGIC}${sha256(body)}\n${body}`
}

const isMeta = (value: unknown): value is Meta => {
  if (typeof value !== "object" || value === null) return false
  const m = value as Record<string, unknown>
  return typeof m["endpoint"] === "string" &&
    (m["expiresAt"] === null || typeof m["expiresAt"] === "number") &&
    (m["requestId"] === null || typeof m["requestId"] === "string") &&
    typeof m["status"] === "number"
}

/** The entry, when it is whole, for `endpoint`, and not expired at `nowMillis`; else undefined. */
export const decode = (text: string, endpoint: string, nowMillis: number): Read | undefined => {
  if (!text.startsWith(MAGIC)) return undefined
  const headerEnd = text.indexOf("\n")
  if (headerEnd < 0) return undefined
  const body = text.slice(headerEnd + 1)
  if (text.slice(MAGIC.length, headerEnd) !== sha256(body)) return undefined
  const metaEnd = body.indexOf("\n")
  if (metaEnd < 0) return undefined
  const meta = Either.getOrUndefined(JsonText.parseJson(body.slice(0, metaEnd)))
  if (!isMeta(meta) || meta.endpoint !== endpoint) return undefined
  if (meta.expiresAt !== null && meta.expiresAt <= nowMillis) return undefined
  return { meta, value: body.slice(metaEnd + 1) }
}
