/**
 * The response cache's keys: SHA-256 over the endpoint, the provider's identity and the request in
 * canonical form (object keys sorted at every depth, so that two requests written in another key
 * order share an entry). The identity is the base URL and a hash of the API key (never the key).
 * @internal
 */
import { createHash } from "node:crypto"

/** The JSON text of `value` with the keys of every object sorted; `undefined` members left out, as `JSON.stringify` does. */
export const canonical = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? "null" : canonical(item))).join(",")}]`
  const record = value as Record<string, unknown>
  const parts: Array<string> = []
  for (const key of Object.keys(record).sort()) {
    const member = record[key]
    if (member === undefined || typeof member === "function") continue
    parts.push(`${JSON.stringify(key)}:${canonical(member)}`)
  }
  return `{${parts.join(",")}}`
}

/** The SHA-256 of a text, in hex. */
export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

/** Who answers: the base URL (without trailing slashes) and a hash of the key; the key itself is dropped here. */
export interface Identity {
  readonly baseUrl: string
  /** SHA-256 of the key (domain-separated); empty without a key. */
  readonly keyDigest: string
}

/** The identity of a client. */
export const identity = (baseUrl: string, apiKey: string | undefined): Identity => ({
  baseUrl: baseUrl.replace(/\/+$/, ""),
  keyDigest: apiKey === undefined ? "" : sha256(`effect-shepherd/ResponseCache key\n${apiKey}`)
})

/**
 * The key of a request: 64 hex digits. With `sharedAcrossKeys` the key's hash is left out, so that
 * every API key of one base URL shares the entries.
 */
export const of = (endpoint: string, request: unknown, who: Identity, sharedAcrossKeys: boolean): string =>
  sha256(`shepherd-cache/1\n${endpoint}\n${who.baseUrl}\n${sharedAcrossKeys ? "*" : who.keyDigest}\n${canonical(request)}`)
