/**
 * Embedding vectors sent as base64 (`encoding_format: "base64"`): little-endian float32 bytes decoded
 * to a `Float32Array` by the embeddings decoder, the Schema and the wire helpers; bad base64 is a
 * `ResponseDecodeError` naming the vector.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { ChatSchema, Pricing } from "../src/index.js"
import * as BatchFile from "../src/cli/batchOutput.js"
import * as Outcomes from "../src/internal/batchApi/outcomes.js"
import * as Classify from "../src/internal/classify.js"
import * as EmbeddingVectors from "../src/internal/embeddingVectors.js"

/** The base64 of `values` as float32 little-endian, written byte by byte (independently of the code under test). */
const base64Of = (values: ReadonlyArray<number>): string => {
  const view = new DataView(new ArrayBuffer(values.length * 4))
  values.forEach((x, i) => view.setFloat32(i * 4, x, true))
  return Buffer.from(view.buffer).toString("base64")
}

const response = (embeddings: ReadonlyArray<unknown>) =>
  JSON.stringify({ object: "list", model: "e", data: embeddings.map((embedding, index) => ({ object: "embedding", index, embedding })), usage: { prompt_tokens: 2, total_tokens: 2 } })

const received = (body: string): Classify.Received => ({ status: 200, headers: { "x-request-id": "req_e" }, body, nowMillis: 0, attempts: 1 })
const scrub = Classify.makeScrub(undefined)

const float32s = FastCheck.array(FastCheck.float({ noNaN: true }), { maxLength: 300 })

describe("base64 embedding vectors", () => {
  it("decode to the float32s that were encoded (any values, any length, sign of zero kept)", () => {
    FastCheck.assert(FastCheck.property(float32s, (values) => {
      const decoded = EmbeddingVectors.decodeBase64(base64Of(values))
      expect(Either.isRight(decoded)).toBe(true)
      const vector = Either.getOrThrow(decoded)
      expect(vector).toBeInstanceOf(Float32Array)
      expect(Array.from(vector)).toEqual(values.map(Math.fround))
      expect(EmbeddingVectors.encodeBase64(vector)).toBe(base64Of(values))
    }), { numRuns: 300 })
  })

  it("NaN and infinities come back as themselves", () => {
    const vector = Either.getOrThrow(EmbeddingVectors.decodeBase64(base64Of([NaN, Infinity, -Infinity, -0])))
    expect(Number.isNaN(vector[0])).toBe(true)
    expect([vector[1], vector[2], Object.is(vector[3], -0)]).toEqual([Infinity, -Infinity, true])
  })

  it("a vector that is a view into a larger buffer encodes only its own bytes", () => {
    const whole = new Float32Array([1, 2, 3, 4])
    expect(EmbeddingVectors.encodeBase64(whole.subarray(1, 3))).toBe(base64Of([2, 3]))
  })

  it("the embeddings decoder gives a Float32Array for a base64 vector and keeps a number array as sent", () => {
    const numbers = FastCheck.array(FastCheck.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 50 })
    FastCheck.assert(FastCheck.property(float32s, numbers, (a, b) => {
      const decoded = Classify.decodeEmbeddings(received(response([base64Of(a), b])), scrub)
      const value = Either.getOrThrow(decoded)
      expect(value.data[0]!.embedding).toBeInstanceOf(Float32Array)
      expect(Array.from(value.data[0]!.embedding)).toEqual(a.map(Math.fround))
      expect(value.data[1]!.embedding).toEqual(JSON.parse(JSON.stringify(b)))
    }), { numRuns: 100 })
  })

  const bad: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["a length not a multiple of 4 characters", "AAAAAA", /data\[1\]\.embedding: base64 of 6 characters, not a multiple of 4/],
    ["a byte count not a multiple of 4", "AAAAAAA=", /data\[1\]\.embedding: 5 bytes, not a multiple of 4/],
    ["a character outside the alphabet", "AAA*AAAA", /data\[1\]\.embedding: not base64: "\*" at character 3/],
    ["padding inside the text", "AA==AAAA", /data\[1\]\.embedding: not base64: padding inside/]
  ]
  for (const [what, text, detail] of bad) {
    it(`${what} is a ResponseDecodeError naming the vector`, () => {
      const decoded = Classify.decodeEmbeddings(received(response([base64Of([1]), text])), scrub)
      expect(Either.isLeft(decoded)).toBe(true)
      const error = Either.getOrThrow(Either.flip(decoded))
      expect(error._tag).toBe("ResponseDecodeError")
      expect(error.detail).toMatch(detail)
      expect(error.requestId).toBe("req_e")
    })
  }

  it("a body that is not an embeddings response still says what is wrong", () => {
    const error = Either.getOrThrow(Either.flip(Classify.decodeEmbeddings(received(response([true])), scrub)))
    expect(error.detail).toContain("embedding")
  })

  it("ChatSchema.EmbeddingResponse decodes base64 and encodes back the same wire JSON", () => {
    const wire = JSON.parse(response([base64Of([0.5, -1]), [0.25]])) as unknown
    const decoded = Schema.decodeUnknownSync(ChatSchema.EmbeddingResponse)(wire)
    expect(decoded.data[0]!.embedding).toEqual(new Float32Array([0.5, -1]))
    expect(Schema.encodeSync(ChatSchema.EmbeddingResponse)(decoded)).toEqual(wire)
    expect(EmbeddingVectors.toWire(decoded)).toEqual(wire)
    expect(Either.getOrThrow(EmbeddingVectors.fromWire(wire as ChatSchema.EmbeddingResponseEncoded))).toEqual(decoded)
    expect(Either.isLeft(Schema.decodeUnknownEither(ChatSchema.Float32ArrayFromBase64)("AAAAAAA="))).toBe(true)
  })
})

describe("base64 embeddings in batch files", () => {
  it("a Batch API output line with base64 vectors is a success with Float32Arrays, written back as the same base64", () => {
    const body = { model: "text-embedding-3-small", input: ["a"], encoding_format: "base64" as const }
    const item = { request: { custom_id: "e1", url: "/v1/embeddings" as const, body }, index: 0, line: "", bytes: 0 }
    const answer = JSON.parse(response([base64Of([0.5, 2])])) as unknown
    const output = JSON.stringify({ id: "b1", custom_id: "e1", response: { status_code: 200, request_id: "req_b", body: answer }, error: null })
    const mapped = Outcomes.map([item], output, undefined, Pricing.defaultTable, 0)
    const outcome = mapped.outcomes[0]!
    if (outcome._tag !== "Success" || outcome.url !== "/v1/embeddings") throw new Error(JSON.stringify(outcome))
    expect(outcome.embeddings.data[0]!.embedding).toEqual(new Float32Array([0.5, 2]))
    expect(BatchFile.outputLine(outcome, "x").response!.body).toEqual(answer)
  })

  it("a Batch API output line whose base64 does not decode is a ResponseDecodeError", () => {
    const item = { request: { custom_id: "e1", url: "/v1/embeddings" as const, body: { model: "m", input: "a" } }, index: 0, line: "", bytes: 0 }
    const output = JSON.stringify({ custom_id: "e1", response: { status_code: 200, body: JSON.parse(response(["AAA"])) }, error: null })
    const outcome = Outcomes.map([item], output, undefined, Pricing.defaultTable, 0).outcomes[0]!
    expect(outcome._tag === "Failure" && outcome.error._tag).toBe("ResponseDecodeError")
  })
})

describe("EmbeddingVectors.placed: one non-empty vector per input", () => {
  const item = (index: number, embedding: ReadonlyArray<number> = [index]) => ({ index, embedding })
  it("any order of the indexes 0 to n-1 places each vector at its index", () =>
    FastCheck.assert(FastCheck.property(FastCheck.integer({ min: 0, max: 12 }).chain((n) => FastCheck.shuffledSubarray(Array.from({ length: n }, (_, i) => i), { minLength: n, maxLength: n })), (order) => {
      expect(EmbeddingVectors.placed(order.map((i) => item(i)), order.length)).toEqual(Array.from({ length: order.length }, (_, i) => [i]))
    })))

  it("a vector missing, repeated, out of range, not an integer index, or empty: none placed", () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<ReturnType<typeof item>>, number]> = [
      [[item(0)], 2],
      [[item(0), item(0)], 2],
      [[item(0), item(2)], 2],
      [[item(0), item(-1)], 2],
      [[item(0), item(0.5)], 2],
      [[item(0, [])], 1],
      [[item(0), item(1)], 1]
    ]
    for (const [data, count] of cases) expect(EmbeddingVectors.placed(data, count)).toBeUndefined()
  })
})
