import * as Duration from "effect/Duration"

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Reads a duration as written on a command line: `50ms`, `1.5s`, `2m`, `1h`. The unit is required: a
 * bare `5` is refused (is it 5 ms or 5 s?) with "add a unit, e.g. 5s". Throws an `Error` whose message
 * shows the accepted forms.
 * @internal
 */
export const parseDuration = (text: string): Duration.Duration => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text)
  if (match === null) throw new Error(`not a duration: ${JSON.stringify(text)} (write e.g. 50ms, 1.5s, 2m)`)
  if (match[2] === undefined) throw new Error(`${JSON.stringify(text.trim())} has no unit: add a unit, e.g. ${match[1]}s`)
  return Duration.millis(Number(match[1]) * UNITS[match[2]]!)
}
