/**
 * `JSON.parse` as a value: the one place that turns its exception into an `Either`.
 * @internal
 */
import * as Either from "effect/Either"

/**
 * Parses JSON text: `Right` with the value, or `Left` with the parser's message (e.g.
 * `Unexpected token } in JSON at position 12`). Never throws.
 *
 * @since 0.2.0
 * @category parsing
 */
export const parseJson = (text: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(text))
  } catch (e) {
    return Either.left(e instanceof Error ? e.message : String(e))
  }
}
