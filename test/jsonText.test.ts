import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import { parseJson } from "../src/internal/jsonText.js"

describe("parseJson", () => {
  it("property: any JSON text gives JSON.parse's value", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.jsonValue(), (value) => {
        const text = JSON.stringify(value)
        expect(parseJson(text)).toEqual(Either.right(JSON.parse(text)))
      })
    )
  })

  it("property: any text gives a value or the parser's message, never a throw", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.string(), (text) => {
        const result = parseJson(text)
        let expected: Either.Either<unknown, string>
        try {
          expected = Either.right(JSON.parse(text))
        } catch (e) {
          expected = Either.left((e as Error).message)
        }
        expect(result).toEqual(expected)
      })
    )
  })

  it("explains text that is not JSON", () => {
    const result = parseJson(`{"a":1,}`)
    expect(Either.isLeft(result) && result.left.length > 0).toBe(true)
    expect(parseJson("")._tag).toBe("Left")
  })
})
