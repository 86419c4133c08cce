/**
 * `Schema.is` compiled to plain closures, for the wire formats checked once per answer or per stream
 * event. `Schema.is` walks Effect's generic parser (an `Either` and an output object per struct,
 * options merged at every level); for the shapes a JSON wire format uses (structs without index
 * signatures, arrays, unions, literals, strings, numbers, booleans) this checks the same thing with
 * a few typeof tests. Any other node (a refinement, an index signature, a declaration) is checked
 * by `Schema.is` itself, so the predicate accepts exactly what `Schema.is(schema)` accepts
 * (test/fastIs.test.ts compares the two on generated values).
 * @internal
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"

type Check = (u: unknown) => boolean

const hasOwn = Object.prototype.hasOwnProperty

const struct = (ast: AST.TypeLiteral): Check => {
  // As `Schema.is`: an object that is not an array; a required key must be an own property
  // (`exact: true`), an optional one may be missing; other keys are ignored.
  const names = ast.propertySignatures.map((ps) => ps.name)
  const optional = ast.propertySignatures.map((ps) => ps.isOptional)
  const checks = ast.propertySignatures.map((ps) => go(ps.type))
  const n = names.length
  return (u) => {
    if (typeof u !== "object" || u === null || Array.isArray(u)) return false
    const record = u as Record<PropertyKey, unknown>
    for (let i = 0; i < n; i++) {
      const name = names[i]!
      if (!hasOwn.call(record, name)) {
        if (optional[i]) continue
        return false
      }
      if (!checks[i]!(record[name])) return false
    }
    return true
  }
}

const go = (ast: AST.AST): Check => {
  switch (ast._tag) {
    case "StringKeyword":
      return (u) => typeof u === "string"
    case "NumberKeyword":
      return (u) => typeof u === "number"
    case "BooleanKeyword":
      return (u) => typeof u === "boolean"
    case "UndefinedKeyword":
      return (u) => u === undefined
    case "UnknownKeyword":
    case "AnyKeyword":
      return () => true
    case "Literal": {
      const literal = ast.literal
      return (u) => u === literal
    }
    case "Union": {
      const members = ast.types.map(go)
      return (u) => {
        for (const member of members) if (member(u)) return true
        return false
      }
    }
    case "TupleType": {
      if (ast.elements.length === 0 && ast.rest.length === 1) {
        const item = go(ast.rest[0]!.type)
        return (u) => {
          if (!Array.isArray(u)) return false
          for (const x of u) if (!item(x)) return false
          return true
        }
      }
      break
    }
    case "TypeLiteral": {
      if (ast.indexSignatures.length > 0) break
      if (ast.propertySignatures.length === 0) return (u) => u !== null && u !== undefined
      return struct(ast)
    }
    case "Suspend": {
      let inner: Check | undefined
      return (u) => (inner ??= go(ast.f()))(u)
    }
  }
  const is = ParseResult.is(Schema.make(ast))
  return (u) => is(u)
}

/** A predicate that accepts exactly what `Schema.is(schema)` accepts, faster for JSON wire formats. */
export const is = <A, I, R>(schema: Schema.Schema<A, I, R>): (u: unknown) => u is A => go(AST.typeAST(schema.ast)) as (u: unknown) => u is A
