/** internal/fastIs: the compiled predicate accepts exactly what `Schema.is` accepts. */
import { describe, expect, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as ChatSchema from "../src/ChatSchema.js"
import * as FastIs from "../src/internal/fastIs.js"

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** Every path to a value inside `value` (the root included). */
const paths = (value: unknown, at: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  const out = [at]
  if (Array.isArray(value)) value.forEach((x, i) => out.push(...paths(x, [...at, i])))
  else if (typeof value === "object" && value !== null) for (const [k, x] of Object.entries(value)) out.push(...paths(x, [...at, k]))
  return out
}

/** `value` with the thing at `path` replaced by `by`, or deleted when `by` is the string "<delete>". */
const mutate = (value: unknown, path: ReadonlyArray<string | number>, by: Json | "<delete>"): unknown => {
  if (path.length === 0) return by === "<delete>" ? undefined : by
  const [head, ...rest] = path
  if (Array.isArray(value)) {
    const copy = [...value]
    if (rest.length === 0 && by === "<delete>") copy.splice(head as number, 1)
    else copy[head as number] = mutate(copy[head as number], rest, by)
    return copy
  }
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) }
  if (rest.length === 0 && by === "<delete>") delete copy[head as string]
  else copy[head as string] = mutate(copy[head as string], rest, by)
  return copy
}

const replacement: FastCheck.Arbitrary<Json | "<delete>"> = FastCheck.oneof(
  FastCheck.constant("<delete>" as const),
  FastCheck.constant(null),
  FastCheck.constant([]),
  FastCheck.constant({}),
  FastCheck.constantFrom("assistant", "user", "function", "tool_calls", "chat.completion.chunk"),
  FastCheck.jsonValue() as FastCheck.Arbitrary<Json>
)

/** Valid values of `schema`, each with one part replaced or deleted. */
const mutated = <A, I>(schema: Schema.Schema<A, I>) =>
  Arbitrary.make(schema).chain((value) =>
    FastCheck.tuple(FastCheck.constantFrom(...paths(value)), replacement).map(([path, by]) => mutate(value, path, by))
  )

const agrees = <A, I>(schema: Schema.Schema<A, I>) => {
  const fast = FastIs.is(schema)
  const slow = Schema.is(schema)
  return (u: unknown): boolean => fast(u) === slow(u)
}

const wire = [
  ["ChatCompletion", ChatSchema.ChatCompletion],
  ["ChatCompletionChunk", ChatSchema.ChatCompletionChunk],
  ["EmbeddingResponse", ChatSchema.EmbeddingResponse],
  ["ErrorResponse", ChatSchema.ErrorResponse]
] as const

describe("FastIs.is", () => {
  for (const [name, schema] of wire) {
    const check = agrees(schema as Schema.Schema<unknown, unknown>)
    it(`accepts every valid ${name}`, () => {
      const is = FastIs.is(schema as Schema.Schema<unknown, unknown>)
      FastCheck.assert(FastCheck.property(Arbitrary.make(schema as Schema.Schema<unknown, unknown>), (value) => is(value)), { numRuns: 300 })
    })
    it(`agrees with Schema.is on a ${name} with one part replaced or deleted`, () => {
      FastCheck.assert(FastCheck.property(mutated(schema as Schema.Schema<unknown, unknown>), check), { numRuns: 1000 })
    })
    it(`agrees with Schema.is on any value (${name})`, () => {
      FastCheck.assert(FastCheck.property(FastCheck.anything({ withNullPrototype: true, withBoxedValues: true }), check), { numRuns: 300 })
    })
  }

  it("checks refinements and index signatures with Schema.is itself", () => {
    const schema = Schema.Struct({ n: Schema.Int.pipe(Schema.between(1, 3)), tags: Schema.Record({ key: Schema.String, value: Schema.Number }) })
    const check = agrees(schema)
    for (const u of [{ n: 2, tags: {} }, { n: 2.5, tags: {} }, { n: 4, tags: { a: 1 } }, { n: 1, tags: { a: "x" } }, { n: 1 }, null, []]) expect(check(u)).toBe(true)
    expect(FastIs.is(schema)({ n: 2, tags: { a: 1 } })).toBe(true)
    expect(FastIs.is(schema)({ n: 2.5, tags: {} })).toBe(false)
  })

  it("requires a required key as an own property, and ignores unknown keys", () => {
    const schema = Schema.Struct({ a: Schema.String, b: Schema.optional(Schema.Number) })
    const check = agrees(schema)
    const inherited = Object.create({ a: "x" }) as unknown
    for (const u of [{ a: "x" }, { a: "x", b: undefined }, { a: "x", c: 1 }, inherited, { b: 1 }, ["x"], { a: "x", b: "1" }]) expect(check(u)).toBe(true)
    expect(FastIs.is(schema)(inherited)).toBe(false)
    expect(FastIs.is(schema)({ a: "x", b: undefined })).toBe(true)
  })
})
