/**
 * Test-only: `SHEPHERD_TEST_WINDOW` (a duration such as `5s`) replaces the minute that `--rpm` and
 * `--tpm` count over (`RateLimit.Options.window`), so that the test suite's multi-process rate-limit
 * scenario takes seconds instead of minutes. Providers count per minute: nothing but tests sets it.
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { parseDuration } from "./durationText.js"
import { CliError } from "./error.js"

/** The window from `SHEPHERD_TEST_WINDOW`; undefined (a minute) when unset or blank. */
export const testWindow: Effect.Effect<Duration.Duration | undefined, CliError> = Effect.suspend(() => {
  const text = process.env["SHEPHERD_TEST_WINDOW"]
  if (text === undefined || text.trim() === "") return Effect.succeed(undefined)
  return Effect.try({
    try: () => parseDuration(text),
    catch: (e) => new CliError({ detail: `SHEPHERD_TEST_WINDOW (test-only): ${(e as Error).message}`, exitCode: 2 })
  })
})
