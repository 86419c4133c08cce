/**
 * Checks of option values, shared by every layer: each returns the value (a duration decoded) or a
 * `ConfigError.InvalidData` whose path names the option as the caller wrote it (`["limits", "rpm"]`).
 * They return `Either`s, which `yield*` reads inside `Effect.gen`, so that pure constructors can use
 * them too. A message never quotes a secret (see {@link apiKey}).
 * @internal
 */
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** A checked value, or the option that is wrong. */
export type Checked<A> = Either.Either<A, ConfigError.ConfigError>

/** The path of an option inside the options object at `path`. */
export type Path = ReadonlyArray<string>

/** `limits.rpm` for messages. */
export const pathText = (path: Path): string => path.join(".")

/** A value for a message: strings quoted, numbers as written, other things by their type. */
const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint" || value === undefined || value === null) {
    return String(value)
  }
  if (Duration.isDuration(value)) return Duration.format(value)
  if (Array.isArray(value)) return "an array"
  return `a value of type ${typeof value}`
}

/** The error for `path`: "`limits.rpm` must be ..., got 0". */
export const invalid = (path: Path, message: string): ConfigError.ConfigError => ConfigError.InvalidData([...path], `${pathText(path)} ${message}`)

const check = <A>(ok: boolean, path: Path, expected: string, value: unknown, result: A): Checked<A> =>
  ok ? Either.right(result) : Either.left(invalid(path, `must be ${expected}, got ${show(value)}`))

/** A whole number of at least 1. */
export const positiveInt = (path: Path, value: unknown): Checked<number> =>
  check(typeof value === "number" && Number.isSafeInteger(value) && value >= 1, path, "a whole number of at least 1", value, value as number)

/** A whole number of at least 0. */
export const nonNegativeInt = (path: Path, value: unknown): Checked<number> =>
  check(typeof value === "number" && Number.isSafeInteger(value) && value >= 0, path, "a whole number of at least 0", value, value as number)

/** A finite number above 0. */
export const positiveNumber = (path: Path, value: unknown): Checked<number> =>
  check(typeof value === "number" && Number.isFinite(value) && value > 0, path, "a finite number above 0", value, value as number)

/** A finite number of at least 0. */
export const nonNegative = (path: Path, value: unknown): Checked<number> =>
  check(typeof value === "number" && Number.isFinite(value) && value >= 0, path, "a finite number of at least 0", value, value as number)

/** A finite number in `[min, max]`. */
export const between = (path: Path, value: unknown, min: number, max: number): Checked<number> =>
  check(typeof value === "number" && Number.isFinite(value) && value >= min && value <= max, path, `a number from ${min} to ${max}`, value, value as number)

/** A finite number of at least `min`. */
export const atLeast = (path: Path, value: unknown, min: number): Checked<number> =>
  check(typeof value === "number" && Number.isFinite(value) && value >= min, path, `a finite number of at least ${min}`, value, value as number)

/** `true` or `false`. */
export const boolean = (path: Path, value: unknown): Checked<boolean> =>
  check(typeof value === "boolean", path, "true or false", value, value as boolean)

/** A string that is not blank. */
export const nonEmptyString = (path: Path, value: unknown): Checked<string> =>
  check(typeof value === "string" && value.trim() !== "", path, "a non-empty string", value, value as string)

/** One of `choices`. */
export const oneOf = <const C extends ReadonlyArray<string>>(path: Path, value: unknown, choices: C): Checked<C[number]> =>
  check(
    typeof value === "string" && choices.includes(value),
    path,
    `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`,
    value,
    value as C[number]
  )

/**
 * Whether a duration input is written negative: `Duration.decode` turns `-5`, `"-5 seconds"` and NaN
 * into zero without a word, which would hide the mistake.
 */
const negativeInput = (input: unknown): boolean => {
  if (typeof input === "number") return Number.isNaN(input) || input < 0
  if (typeof input === "bigint") return input < 0n
  if (typeof input === "string") return /^\s*-/.test(input) || /^\s*NaN\b/i.test(input)
  if (Array.isArray(input)) return input.some((part) => typeof part !== "number" || Number.isNaN(part) || part < 0)
  return false
}

const duration = (path: Path, input: unknown, allowZero: boolean): Checked<Duration.Duration> => {
  const expected = allowZero ? "a finite duration of at least 0 (e.g. \"500 millis\")" : "a positive finite duration (e.g. \"30 seconds\")"
  if (negativeInput(input)) return Either.left(invalid(path, `must be ${expected}, got ${show(input)}`))
  return Option.match(Duration.decodeUnknown(input), {
    onNone: () => Either.left(invalid(path, `is not a duration (write e.g. "30 seconds" or a number of milliseconds), got ${show(input)}`)),
    onSome: (d) =>
      Duration.isFinite(d) && (allowZero || Duration.greaterThan(d, Duration.zero))
        ? Either.right(d)
        : Either.left(invalid(path, `must be ${expected}, got ${show(input)}`))
  })
}

/** A duration above zero and finite (`"30 seconds"`, `500` ms, a `Duration`). */
export const positiveDuration = (path: Path, input: unknown): Checked<Duration.Duration> => duration(path, input, false)

/** A finite duration, zero allowed. */
export const nonNegativeDuration = (path: Path, input: unknown): Checked<Duration.Duration> => duration(path, input, true)

/** A URL with one of `protocols` (`["http:", "https:"]`); the message shows it without credentials. */
export const url = (path: Path, value: unknown, protocols: ReadonlyArray<string>, example: string): Checked<URL> => {
  const parsed = typeof value === "string" && URL.canParse(value) ? new URL(value) : undefined
  if (parsed !== undefined && protocols.includes(parsed.protocol) && parsed.hostname !== "") return Either.right(parsed)
  // An unreadable URL may still hold a password: then it is not shown.
  const shown = parsed !== undefined
    ? JSON.stringify(withoutCredentials(parsed))
    : typeof value === "string" && value.includes("@")
    ? "a URL that cannot be read (not shown: it may hold a password)"
    : show(value)
  const names = protocols.map((p) => p.replace(/:$/, ""))
  const kind = names.length === 2 && names[0] === "http" && names[1] === "https" ? "http(s)" : names.join(" or ")
  return Either.left(invalid(path, `must be ${/^[aeiouh]/.test(kind) ? "an" : "a"} ${kind} URL such as ${example}, got ${shown}`))
}

/**
 * `url` as it may be shown: without a user name or password, and with `query` without its query
 * string either (some providers take the key as `?key=...`).
 */
export const withoutCredentials = (url: URL, options: { readonly query?: boolean } = {}): string => {
  const copy = new URL(url.href)
  copy.username = ""
  copy.password = ""
  if (options.query === true) copy.search = ""
  return copy.href
}

/** What a character that a header cannot carry is, without showing it. */
const describeChar = (code: number): string =>
  code === 13
    ? "a carriage return (\\r)"
    : code === 10
    ? "a line feed (\\n)"
    : code === 0
    ? "a NUL character"
    : code === 32 || code === 9
    ? "whitespace"
    : code < 32 || code === 127
    ? "a control character"
    : "a character outside ASCII"

/** The first character (index) outside `allowed`, or -1. */
const firstBad = (text: string, allowed: (code: number) => boolean): number => {
  for (let i = 0; i < text.length; i++) if (!allowed(text.charCodeAt(i))) return i
  return -1
}

/** RFC 9110 field-value: visible ASCII, spaces and tabs inside (no CR, LF, NUL or other controls). */
const fieldValueChar = (code: number): boolean => code === 9 || (code >= 32 && code <= 126)

/** RFC 9110 token (a header name). */
const tokenChar = (code: number): boolean =>
  (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code))

/** A header name: an RFC 9110 token. */
export const headerName = (path: Path, name: string): Checked<string> =>
  name !== "" && firstBad(name, tokenChar) === -1
    ? Either.right(name)
    : Either.left(invalid(path, `is not a valid header name (letters, digits and !#$%&'*+-.^_\`|~ only), got ${JSON.stringify(name)}`))

/**
 * A header value: no CR, LF, NUL or other control character, nothing outside ASCII, and no space or
 * tab at either end (a pasted value's newline would otherwise fail every request in transit).
 */
export const headerValue = (path: Path, value: unknown): Checked<string> => {
  if (typeof value !== "string") return Either.left(invalid(path, `must be a string, got ${show(value)}`))
  const bad = firstBad(value, fieldValueChar)
  if (bad >= 0) return Either.left(invalid(path, `holds ${describeChar(value.charCodeAt(bad))} at position ${bad}, which an HTTP header cannot carry`))
  if (value !== value.trim()) return Either.left(invalid(path, "starts or ends with whitespace, which an HTTP header cannot carry: trim it"))
  return Either.right(value)
}

/**
 * An API key for `Authorization: Bearer <key>`: visible ASCII only (no whitespace, no line break, no
 * character beyond ASCII). The message says what is wrong and where, never the key.
 */
export const apiKey = (path: Path, key: string, source: string): Checked<string> => {
  if (key === "") return Either.left(invalid(path, `is empty; set it, or leave it out for a server that needs none (${source})`))
  const bad = firstBad(key, (code) => code > 32 && code < 127)
  if (bad < 0) return Either.right(key)
  const where = bad === key.length - 1 ? "at its end" : bad === 0 ? "at its start" : `at position ${bad} of ${key.length}`
  return Either.left(invalid(
    path,
    `holds ${describeChar(key.charCodeAt(bad))} ${where}, which an HTTP header cannot carry: copy the key again without it (${source})`
  ))
}
