import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Json } from "../src/index.js"

const suite = fileURLToPath(new URL("./fixtures/JSONTestSuite/test_parsing/", import.meta.url))
const files = readdirSync(suite).filter((f) => f.endsWith(".json"))

const roundTrip = (v: unknown): unknown => JSON.parse(JSON.stringify(v))
const ok = (text: string) => {
  const r = Json.parseEither(text)
  if (Either.isLeft(r)) throw new Error(`${r.left.message}\n${text.slice(0, 500)}`)
  return r.right
}
/** Trailing commas before every closing bracket of a pretty-printed document (no string holds a raw newline). */
const withTrailingCommas = (pretty: string) => pretty.replace(/([^\s[{,])(\n\s*[}\]])/g, "$1,$2")

describe("JSONTestSuite", () => {
  it("has its files", () => {
    expect(files.filter((f) => f.startsWith("y_")).length).toBe(95)
  })

  for (const file of files) {
    const text = readFileSync(`${suite}${file}`, "utf8")
    if (file.startsWith("y_")) {
      it(`${file}: JSON.parse's value, strict`, () => {
        const r = ok(text)
        expect(r.value).toEqual(JSON.parse(text))
        expect(r.recovery).toBe("strict")
      })
    } else {
      it(`${file}: a value or a typed error, never a throw`, () => {
        const r = Json.parseEither(text)
        if (Either.isLeft(r)) expect(r.left._tag).toBe("JsonParseError")
        else expect(r.right.recovery).toBeDefined()
      })
    }
  }

  it("the 100,000-deep files end in too_deep, not a stack overflow", () => {
    for (const file of ["n_structure_100000_opening_arrays.json", "n_structure_open_array_object.json"]) {
      const r = Json.parseEither(readFileSync(`${suite}${file}`, "utf8"))
      expect(Either.isLeft(r) && r.left.reason).toBe("too_deep")
    }
  })
})

describe("Json.parse", () => {
  const objects = FastCheck.oneof(FastCheck.array(FastCheck.jsonValue()), FastCheck.dictionary(FastCheck.string(), FastCheck.jsonValue()))

  it("property: any JSON text gives its value, strict; pretty-printed too", () => {
    FastCheck.assert(FastCheck.property(FastCheck.jsonValue(), (v) => {
      expect(ok(JSON.stringify(v))).toEqual({ value: roundTrip(v), recovery: "strict" })
      expect(ok(JSON.stringify(v, null, 2))).toEqual({ value: roundTrip(v), recovery: "strict" })
    }), { numRuns: 300 })
  })

  it("property: fenced gives fenced; inside prose gives extracted; trailing commas give repaired", () => {
    FastCheck.assert(FastCheck.property(objects, FastCheck.constantFrom("json", "", "JSON"), (v, tag) => {
      const text = JSON.stringify(v, null, 2)
      expect(ok("Sure! Here it is:\n```" + tag + "\n" + text + "\n```\nAnything else?")).toEqual({ value: roundTrip(v), recovery: "fenced" })
      expect(ok("~~~\n" + text + "\n~~~")).toEqual({ value: roundTrip(v), recovery: "fenced" })
      expect(ok("Here is the result you asked for: " + JSON.stringify(v) + " Let me know if that helps.")).toEqual({ value: roundTrip(v), recovery: "extracted" })
      const commas = withTrailingCommas(text)
      if (commas !== text) expect(ok(commas)).toEqual({ value: roundTrip(v), recovery: "repaired" })
    }), { numRuns: 300 })
  })

  it("property: parsing the recovered value again gives it again (idempotent)", () => {
    FastCheck.assert(FastCheck.property(FastCheck.string(), (s) => {
      const r = Json.parseEither(s)
      if (Either.isRight(r)) expect(ok(JSON.stringify(r.right.value)).value).toEqual(roundTrip(r.right.value)) // (-0 prints as 0)
    }), { numRuns: 500 })
  })

  it("property: every prefix of a valid document gives a value or a JsonParseError, never a throw", () => {
    FastCheck.assert(FastCheck.property(objects, (v) => {
      const text = JSON.stringify(v)
      for (let i = 0; i <= text.length; i += Math.max(1, Math.floor(text.length / 40))) {
        const r = Json.parseEither(text.slice(0, i))
        if (Either.isLeft(r)) expect(r.left._tag).toBe("JsonParseError")
      }
    }), { numRuns: 200 })
  })

  it("property: arbitrary strings never throw", () => {
    FastCheck.assert(FastCheck.property(FastCheck.string({ unit: "binary" }), (s) => {
      const r = Json.parseEither(s)
      expect(Either.isLeft(r) ? r.left._tag : r.right.recovery).toBeDefined()
    }), { numRuns: 1000 })
  })

  it("repairs what models write: single quotes, Python literals, comments, unquoted keys, truncation", () => {
    expect(ok("{'name': 'Ada', 'ok': True, 'none': None}")).toEqual({ value: { name: "Ada", ok: true, none: null }, recovery: "repaired" })
    expect(ok('{"a": 1, // one\n "b": /* two */ 2}')).toEqual({ value: { a: 1, b: 2 }, recovery: "repaired" })
    expect(ok("{name: \"Ada\", age: 36}")).toEqual({ value: { name: "Ada", age: 36 }, recovery: "repaired" })
    expect(ok('{"items": [1, 2, 3], "summary": "the order was sh')).toEqual({ value: { items: [1, 2, 3], summary: "the order was sh" }, recovery: "truncated" })
    expect(ok('```json\n{"items": [1, 2')).toEqual({ value: { items: [1, 2] }, recovery: "truncated" })
    expect(ok('Fill in the {placeholder} as follows: {"a": "}", "b": [1]} done')).toEqual({ value: { a: "}", b: [1] }, recovery: "extracted" })
  })

  it("says precisely why when there is no JSON", () => {
    const cases: Array<[string, string]> = [["", "empty"], ["   \n", "empty"], ["I cannot help with that.", "no_json"], ["[".repeat(1001), "too_deep"]]
    for (const [text, reason] of cases) {
      const r = Json.parseEither(text)
      expect(Either.isLeft(r) && r.left.reason).toBe(reason)
      if (Either.isLeft(r)) expect(r.left.excerpt.length).toBeLessThanOrEqual(200)
    }
    const big = Json.parseEither("1".repeat(100), { maxBytes: 50 })
    expect(Either.isLeft(big) && big.left.reason).toBe("too_large")
  })
})
