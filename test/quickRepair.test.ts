/** The linear repair pass: valid JSON unchanged, and the same values as jsonrepair on the defects models produce. */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { jsonrepair } from "jsonrepair"
import { quickRepair } from "../src/internal/quickRepair.js"

/** JSON values with identifier-like keys (so that unquoted keys are possible) and varied strings. */
const key = FastCheck.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/)
const str = FastCheck.string({ unit: FastCheck.constantFrom("a", "b", " ", "'", "\"", "\\", "\n", "\t", "é", "中", "{", "]", ",", ":", "/", "*") , maxLength: 12 })
const value: FastCheck.Arbitrary<unknown> = FastCheck.letrec((tie) => ({
  leaf: FastCheck.oneof(str, FastCheck.integer({ min: -1e6, max: 1e6 }), FastCheck.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), FastCheck.boolean(), FastCheck.constant(null)),
  node: FastCheck.oneof({ depthSize: "small", withCrossShrink: true }, tie("leaf"), FastCheck.array(tie("node"), { maxLength: 4 }), FastCheck.dictionary(key, tie("node"), { maxKeys: 4 }))
})).node

interface Defects {
  readonly trailingCommas: boolean
  readonly singleQuotes: boolean
  readonly python: boolean
  readonly comments: boolean
  readonly unquotedKeys: boolean
  readonly rawNewlines: boolean
}

/** Writes `v` as a model might: with the defects asked for. */
const write = (v: unknown, d: Defects): string => {
  const string = (s: string): string => {
    if (d.singleQuotes) return "'" + JSON.stringify(s).slice(1, -1).replace(/\\"/g, "\"").replace(/'/g, "\\'") + "'"
    const json = JSON.stringify(s)
    return d.rawNewlines ? json.replace(/\\n/g, "\n") : json
  }
  if (v === null) return d.python ? "None" : "null"
  if (v === true) return d.python ? "True" : "true"
  if (v === false) return d.python ? "False" : "false"
  if (typeof v === "number") return JSON.stringify(v)
  if (typeof v === "string") return string(v)
  const comma = d.trailingCommas ? "," : ""
  const comment = d.comments ? " /* note */ " : ""
  if (Array.isArray(v)) return v.length === 0 ? "[]" : "[" + comment + v.map((x) => write(x, d)).join(", ") + comma + "]"
  const entries = Object.entries(v as Record<string, unknown>)
  if (entries.length === 0) return "{}"
  return "{" + entries.map(([k, x]) => `${d.unquotedKeys ? k : string(k)}: ${write(x, d)}`).join(",\n  // a comment\n  ".slice(0, d.comments ? undefined : 1)) + comma + "}"
}

const defects = FastCheck.record({
  trailingCommas: FastCheck.boolean(),
  singleQuotes: FastCheck.boolean(),
  python: FastCheck.boolean(),
  comments: FastCheck.boolean(),
  unquotedKeys: FastCheck.boolean(),
  rawNewlines: FastCheck.boolean()
})

const viaJsonrepair = (text: string): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: JSON.parse(jsonrepair(text)) }
  } catch {
    return { ok: false }
  }
}

describe("quickRepair", () => {
  it.prop("never changes a valid document's value (compact or pretty)", [value, FastCheck.boolean()], ([v, pretty]) => {
    const text = JSON.stringify(v, null, pretty ? 2 : undefined)
    const repaired = quickRepair(text)
    expect(repaired).toBeDefined()
    expect(JSON.parse(repaired!.text)).toEqual(JSON.parse(text))
    expect(repaired!.truncated).toBe(false)
  })

  it.prop("gives the value that was written, whatever the defects, and agrees with jsonrepair", [value, defects], ([v, d]) => {
    const text = write(v, d)
    const repaired = quickRepair(text)
    expect(repaired).toBeDefined()
    const mine = JSON.parse(repaired!.text)
    expect(mine).toEqual(JSON.parse(JSON.stringify(v)))
    // Where jsonrepair repairs it too, the same value, unless jsonrepair's differs from what was
    // written: it misreads some valid documents (see the next test).
    const theirs = viaJsonrepair(text)
    if (theirs.ok && JSON.stringify(theirs.value) === JSON.stringify(JSON.parse(JSON.stringify(v)))) expect(mine).toEqual(theirs.value)
  })

  it("where jsonrepair misreads a valid document, the pass does not", () => {
    const text = JSON.stringify({ _: { _: "{a" }, _a: "" })
    expect(JSON.parse(quickRepair(text)!.text)).toEqual({ _: { _: "{a" }, _a: "" })
    expect(viaJsonrepair(text)).toEqual({ ok: true, value: { _: { _: "{a\"}", _a: "" } } }) // jsonrepair 3.15
  })

  it.prop("a cut document: when both repair it, the same value; truncation is reported", [value, FastCheck.double({ min: 0, max: 1, noNaN: true })], ([v, at]) => {
    const full = JSON.stringify(v)
    const cut = full.slice(0, Math.floor(full.length * at))
    const repaired = quickRepair(cut)
    if (repaired === undefined) return
    let mine: unknown
    try {
      mine = JSON.parse(repaired.text)
    } catch {
      return // e.g. a cut number ("1."): left to jsonrepair
    }
    if (cut !== full && cut.trim() !== "" && typeof v === "object" && v !== null) expect(repaired.truncated || JSON.stringify(mine) === cut).toBe(true)
    // Compared for documents that are an object or an array (a bare cut string such as `",a]` is read
    // by jsonrepair as several values in an array), where jsonrepair reads the whole document right
    // (it misreads some, see above).
    const whole = viaJsonrepair(full)
    const theirs = viaJsonrepair(cut)
    if (typeof v === "object" && v !== null && theirs.ok && whole.ok && JSON.stringify(whole.value) === full) expect(mine).toEqual(theirs.value)
  })

  it("a string cut by truncation ends before trailing delimiters and white space, as jsonrepair reads it", () => {
    for (const [cut, expected] of [['{"note": "refund, then resend', { note: "refund, then resend" }], ['[0,[",', [0, [""]]], ['{"a": "x] ', { a: "x" }]] as const) {
      expect(JSON.parse(quickRepair(cut)!.text)).toEqual(expected)
      expect(viaJsonrepair(cut)).toEqual({ ok: true, value: expected })
    }
  })

  it("the defects one by one", () => {
    const cases: ReadonlyArray<readonly [string, unknown, boolean]> = [
      ["[{\"id\": 1,}, {\"id\": 2,},]", [{ id: 1 }, { id: 2 }], false],
      ["{'name': 'O\\'Brien', 'say': 'a \"quote\"'}", { name: "O'Brien", say: "a \"quote\"" }, false],
      ["{“name”: “Zoë”, ‘x’: ‘y’}", { name: "Zoë", x: "y" }, false],
      ["{\"ok\": True, \"no\": False, \"none\": None}", { ok: true, no: false, none: null }, false],
      ["{\n  // why\n  \"a\": 1, /* b */ \"b\": 2\n}", { a: 1, b: 2 }, false],
      ["{name: \"x\", count: 2}", { name: "x", count: 2 }, false],
      ["{\"text\": \"line one\nline two\"}", { text: "line one\nline two" }, false],
      ["{\"items\": [1, 2, {\"note\": \"cut her", { items: [1, 2, { note: "cut her" }] }, true],
      ["{\"a\": 1, \"b\"", { a: 1, b: null }, true],
      ["{\"a\": 1, \"b\":", { a: 1, b: null }, true],
      ["[1, 2,", [1, 2], true]
    ]
    for (const [text, expected, truncated] of cases) {
      const repaired = quickRepair(text)
      expect(repaired, text).toBeDefined()
      expect(JSON.parse(repaired!.text)).toEqual(expected)
      expect(repaired!.truncated).toBe(truncated)
    }
  })

  it("gives up on what it does not fix (left to jsonrepair)", () => {
    for (const text of ["{\"a\": undefined}", "[1 2]", "{\"a\" 1}", "[1,,2]", "{\"a\": 1]", "hello", "{\"a\": NaN}", "[...]"]) expect(quickRepair(text), text).toBeUndefined()
  })
})
