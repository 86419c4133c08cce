/**
 * Embedding vectors on the wire: a JSON array of numbers (`encoding_format: "float"`), or the base64
 * of the vector's little-endian float32 bytes (`"base64"`, as OpenAI sends it and openai-node reads it).
 * @internal
 */
import * as Either from "effect/Either"
import type * as ChatSchema from "../ChatSchema.js"

/** Whether this machine stores a Float32Array's bytes little-endian (every platform Node supports today). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** A character outside the standard base64 alphabet and its padding. */
const NOT_BASE64 = /[^A-Za-z0-9+/=]/

/**
 * The vector a base64 string holds, or why it holds none: a length that is not a multiple of 4, a
 * character outside the alphabet, padding inside the text, or a byte count that is not a whole
 * number of float32s.
 */
export const decodeBase64 = (text: string): Either.Either<Float32Array, string> => {
  if (text.length % 4 !== 0) return Either.left(`base64 of ${text.length} characters, not a multiple of 4`)
  const bad = NOT_BASE64.exec(text)
  if (bad !== null) return Either.left(`not base64: ${JSON.stringify(bad[0])} at character ${bad.index}`)
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  const bytes = Buffer.from(text, "base64")
  // Buffer.from stops at the first "=": padding inside the text gives fewer bytes than its length says.
  if (bytes.length !== (text.length / 4) * 3 - padding) return Either.left("not base64: padding inside the text")
  if (bytes.length % 4 !== 0) return Either.left(`${bytes.length} bytes, not a multiple of 4 (one float32 is 4 bytes)`)
  // A copy, never a view: a small Buffer is a slice of a shared 8 KB pool, which a view would keep alive.
  const vector = new Float32Array(bytes.length / 4)
  if (LITTLE_ENDIAN) {
    new Uint8Array(vector.buffer).set(bytes)
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
    for (let i = 0; i < vector.length; i++) vector[i] = view.getFloat32(i * 4, true)
  }
  return Either.right(vector)
}

/** The base64 of a vector's little-endian float32 bytes. */
export const encodeBase64 = (vector: Float32Array): string => {
  if (LITTLE_ENDIAN) return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64")
  const bytes = Buffer.alloc(vector.length * 4)
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4)
  return bytes.toString("base64")
}

/**
 * Decodes the base64 vectors of a response already checked against the wire shape; number arrays are
 * kept as sent. The response is copied only when it has a base64 vector. Fails with the first vector
 * that does not decode, named by its place (`data[3].embedding: ...`).
 */
export const fromWire = (response: ChatSchema.EmbeddingResponseEncoded): Either.Either<ChatSchema.EmbeddingResponse, string> => {
  const data = response.data
  let decoded: Array<ChatSchema.EmbeddingResponse["data"][number]> | undefined
  for (let i = 0; i < data.length; i++) {
    const item = data[i]!
    if (typeof item.embedding !== "string") continue
    const vector = decodeBase64(item.embedding)
    if (Either.isLeft(vector)) return Either.left(`data[${i}].embedding: ${vector.left}`)
    decoded ??= data.slice() as Array<ChatSchema.EmbeddingResponse["data"][number]>
    decoded[i] = { ...item, embedding: vector.right }
  }
  return Either.right(decoded === undefined ? response as ChatSchema.EmbeddingResponse : { ...response, data: decoded })
}

/** A response as it goes on the wire: a `Float32Array` as base64, number arrays as they are. */
export const toWire = (response: ChatSchema.EmbeddingResponse): ChatSchema.EmbeddingResponseEncoded => {
  if (!response.data.some((item) => item.embedding instanceof Float32Array)) return response as ChatSchema.EmbeddingResponseEncoded
  return {
    ...response,
    data: response.data.map((item) => item.embedding instanceof Float32Array ? { ...item, embedding: encodeBase64(item.embedding) } : { ...item, embedding: item.embedding })
  }
}

/**
 * An answer's vectors placed by their `index`, one per input: undefined unless it holds exactly
 * `count` non-empty vectors with the indexes 0 to count - 1, each once. The one check of an
 * embeddings answer against its request (`Embeddings.embedMany`, and the response cache before it
 * stores or replays one).
 */
export const placed = <V extends { readonly length: number }>(
  data: ReadonlyArray<{ readonly index: number; readonly embedding: V }>,
  count: number
): Array<V> | undefined => {
  if (data.length !== count) return undefined
  const vectors = new Array<V | undefined>(count)
  for (const item of data) {
    const i = item.index
    if (!Number.isInteger(i) || i < 0 || i >= count || vectors[i] !== undefined || item.embedding.length === 0) return undefined
    vectors[i] = item.embedding
  }
  return vectors as Array<V>
}
