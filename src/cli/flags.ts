/**
 * A command's flags as one table: each flag's name, value, default and description, from which the
 * command line is parsed and `--help` is written. `shepherd run` uses it instead of @effect/cli, whose
 * help adds filler ("A user-defined piece of text."), hides defaults and always colours, and whose
 * errors are not in the `shepherd: ...` voice.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import { parseDuration } from "./durationText.js"

/** One flag: `--name VALUE`, or `--name` alone for a switch. */
export interface Flag<A> {
  readonly name: string
  /** What the value is, as help shows it (`N`, `FILE`); undefined for a switch. */
  readonly placeholder: string | undefined
  readonly description: string
  /** The default as help shows it; undefined when there is none. */
  readonly shownDefault: string | undefined
  /** The value read from the text given (undefined for a switch), or why it is refused. */
  readonly decode: (text: string | undefined) => Either.Either<A, string>
  /** The value when the flag is not given, or why it must be. */
  readonly absent: Either.Either<A, string>
}

interface Common {
  readonly description: string
  readonly placeholder?: string
}

const flagName = (name: string) => `--${name}`

/** A text value. With `required`, absence is an error. */
export function text(name: string, options: Common & { readonly required: string }): Flag<string>
export function text(name: string, options: Common & { readonly default: string }): Flag<string>
export function text(name: string, options: Common & { readonly defaultText?: string }): Flag<Option.Option<string>>
export function text(
  name: string,
  options: Common & { readonly required?: string; readonly default?: string; readonly defaultText?: string }
): Flag<string> | Flag<Option.Option<string>> {
  const placeholder = options.placeholder ?? "TEXT"
  const check = (value: string) => value.trim() === "" ? Either.left(`${flagName(name)} must not be empty`) : Either.right(value)
  if (options.required !== undefined) {
    return {
      name,
      placeholder,
      description: options.description,
      shownDefault: undefined,
      decode: (value) => check(value ?? ""),
      absent: Either.left(`${flagName(name)} is required: ${options.required}`)
    }
  }
  if (options.default !== undefined) {
    return { name, placeholder, description: options.description, shownDefault: JSON.stringify(options.default), decode: (value) => check(value ?? ""), absent: Either.right(options.default) }
  }
  return {
    name,
    placeholder,
    description: options.description,
    shownDefault: options.defaultText,
    decode: (value) => Either.map(check(value ?? ""), Option.some),
    absent: Either.right(Option.none())
  }
}

/** A file that must exist. */
export const existingFile = (name: string, options: Common & { readonly defaultText?: string }): Flag<Option.Option<string>> => ({
  name,
  placeholder: options.placeholder ?? "FILE",
  description: options.description,
  shownDefault: options.defaultText,
  decode: (value) =>
    value === undefined || value === "" ? Either.left(`${flagName(name)} needs a file name`)
    : Fs.existsSync(value) ? Either.right(Option.some(value))
    : Either.left(`${flagName(name)}: file ${value} does not exist`),
  absent: Either.right(Option.none())
})

/** `{ min }`: the smallest value allowed; `hint`: what to say when it is too small. */
interface NumberOptions extends Common {
  readonly min: number
  readonly hint?: string
}

const readNumber = (name: string, options: NumberOptions, integer: boolean) => (value: string | undefined): Either.Either<number, string> => {
  const trimmed = (value ?? "").trim()
  const n = trimmed === "" ? Number.NaN : Number(trimmed)
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    return Either.left(`${flagName(name)} must be ${integer ? "an integer" : "a number"}, got ${JSON.stringify(value ?? "")}`)
  }
  if (n < options.min || (!integer && options.min === 0 && n === 0)) {
    return Either.left(`${flagName(name)} must be ${integer ? `at least ${options.min}` : "above 0"}, got ${trimmed}${options.hint === undefined ? "" : ` (${options.hint})`}`)
  }
  return Either.right(n)
}

/** An integer of at least `min`. */
export function integer(name: string, options: NumberOptions & { readonly default: number }): Flag<number>
export function integer(name: string, options: NumberOptions & { readonly defaultText?: string }): Flag<Option.Option<number>>
export function integer(
  name: string,
  options: NumberOptions & { readonly default?: number; readonly defaultText?: string }
): Flag<number> | Flag<Option.Option<number>> {
  const read = readNumber(name, options, true)
  const base = { name, placeholder: options.placeholder ?? "N", description: options.description }
  return options.default !== undefined
    ? { ...base, shownDefault: String(options.default), decode: read, absent: Either.right(options.default) }
    : { ...base, shownDefault: options.defaultText, decode: (value) => Either.map(read(value), Option.some), absent: Either.right(Option.none()) }
}

/** A number above 0. */
export const positiveNumber = (name: string, options: Common & { readonly defaultText?: string }): Flag<Option.Option<number>> => {
  const read = readNumber(name, { ...options, min: 0 }, false)
  return {
    name,
    placeholder: options.placeholder ?? "X",
    description: options.description,
    shownDefault: options.defaultText,
    decode: (value) => Either.map(read(value), Option.some),
    absent: Either.right(Option.none())
  }
}

const readDuration = (name: string) => (value: string | undefined): Either.Either<Duration.Duration, string> => {
  const given = (value ?? "").trim()
  if (/^\d+(\.\d+)?$/.test(given)) return Either.left(`${flagName(name)} needs a unit, got ${JSON.stringify(given)}: add a unit, e.g. ${given}s`)
  try {
    const d = parseDuration(given)
    return Duration.toMillis(d) === 0 ? Either.left(`${flagName(name)} must be longer than 0, got ${given}`) : Either.right(d)
  } catch {
    return Either.left(`${flagName(name)} must be a duration such as 500ms, 30s or 2m, got ${JSON.stringify(value ?? "")}`)
  }
}

/** A duration with its unit (`500ms`, `30s`, `2m`, `1h`), longer than 0. */
export function duration(name: string, options: Common & { readonly default: string }): Flag<Duration.Duration>
export function duration(name: string, options: Common & { readonly defaultText?: string }): Flag<Option.Option<Duration.Duration>>
export function duration(
  name: string,
  options: Common & { readonly default?: string; readonly defaultText?: string }
): Flag<Duration.Duration> | Flag<Option.Option<Duration.Duration>> {
  const read = readDuration(name)
  const base = { name, placeholder: options.placeholder ?? "DURATION", description: options.description }
  return options.default !== undefined
    ? { ...base, shownDefault: options.default, decode: read, absent: read(options.default) }
    : { ...base, shownDefault: options.defaultText, decode: (value) => Either.map(read(value), Option.some), absent: Either.right(Option.none()) }
}

/** A switch: `--name` alone turns it on. */
export const boolean = (name: string, options: { readonly description: string }): Flag<boolean> => ({
  name,
  placeholder: undefined,
  description: options.description,
  shownDefault: "off",
  decode: () => Either.right(true),
  absent: Either.right(false)
})

/** A text value read by `parse`, which throws an `Error` whose message says what is wrong. */
export const custom = <A>(name: string, options: Common & { readonly parse: (text: string) => A; readonly defaultText?: string }): Flag<Option.Option<A>> => ({
  name,
  placeholder: options.placeholder ?? "TEXT",
  description: options.description,
  shownDefault: options.defaultText,
  decode: (value) => {
    try {
      return Either.right(Option.some(options.parse(value ?? "")))
    } catch (e) {
      return Either.left(e instanceof Error ? e.message : String(e))
    }
  },
  absent: Either.right(Option.none())
})

/** A command's table: its flags by the key its handler reads them under. */
export type Table = Readonly<Record<string, Flag<unknown>>>

/** The values a table parses to. */
export type Parsed<T extends Table> = { readonly [K in keyof T]: T[K] extends Flag<infer A> ? A : never }

/** The one positional argument: an input file that must exist. */
export interface Positional {
  readonly name: string
  readonly description: string
}

/** What a command line asks for: help, or a run with these values. */
export type Request<T extends Table> =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Run"; readonly input: string; readonly flags: Parsed<T> }

/** Edit distance, for "did you mean". */
const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

const suggestion = (table: Table, unknown: string): string => {
  const name = unknown.replace(/^-+/, "")
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const flag of Object.values(table)) {
    const d = distance(name, flag.name)
    if (d < bestDistance) {
      best = flag.name
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean --${best}?)` : ""
}

/**
 * Reads `args` (what follows the command's name) against `table`: `--name VALUE`, `--name=VALUE`,
 * switches alone, one positional input file, `--` to end the flags, `-h`/`--help`. Gives the first
 * problem as one sentence (`Left`) or what was asked.
 */
export const parse = <T extends Table>(
  table: T,
  positional: Positional,
  args: ReadonlyArray<string>,
  usage: string
): Either.Either<Request<T>, string> => {
  if (args.some((a) => a === "--help" || a === "-h")) return Either.right({ _tag: "Help" })
  const byName = new Map(Object.entries(table).map(([key, flag]) => [flag.name, [key, flag] as const]))
  const given = new Map<string, unknown>()
  const inputs: Array<string> = []
  let flagsEnded = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (flagsEnded || !arg.startsWith("-") || arg === "-") {
      inputs.push(arg)
      continue
    }
    if (arg === "--") {
      flagsEnded = true
      continue
    }
    const equals = arg.indexOf("=")
    const name = (equals === -1 ? arg : arg.slice(0, equals)).replace(/^--?/, "")
    const entry = arg.startsWith("--") ? byName.get(name) : undefined
    if (entry === undefined) {
      const unknown = equals === -1 ? arg : arg.slice(0, equals)
      const guess = suggestion(table, name)
      return Either.left(`unknown option ${unknown}${guess === "" ? `; see ${usage} --help` : guess}`)
    }
    const [key, flag] = entry
    if (given.has(key)) return Either.left(`--${name} is given twice`)
    let value: string | undefined
    if (flag.placeholder === undefined) {
      if (equals !== -1) return Either.left(`--${name} takes no value, got ${JSON.stringify(arg.slice(equals + 1))}`)
    } else if (equals !== -1) {
      value = arg.slice(equals + 1)
    } else {
      const next = args[i + 1]
      if (next === undefined || (next.startsWith("--") && next.length > 2)) return Either.left(`--${name} needs a value (${flag.placeholder})`)
      value = next
      i++
    }
    const decoded = flag.decode(value)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    given.set(key, decoded.right)
  }
  if (inputs.length === 0) return Either.left(`missing the input file: ${usage} ${positional.name} ...; see ${usage} --help`)
  if (inputs.length > 1) return Either.left(`one input file at a time, got ${inputs.length}: ${inputs.join(" ")}`)
  const input = inputs[0]!
  if (!Fs.existsSync(input)) return Either.left(`input file ${input} does not exist`)
  if (Fs.statSync(input).isDirectory()) return Either.left(`input file ${input} is a directory`)
  const values: Record<string, unknown> = {}
  for (const [key, flag] of Object.entries(table)) {
    if (given.has(key)) {
      values[key] = given.get(key)
      continue
    }
    if (Either.isLeft(flag.absent)) return Either.left(flag.absent.left)
    values[key] = flag.absent.right
  }
  return Either.right({ _tag: "Run", input, flags: values as Parsed<T> })
}

/** Whether help may be styled: a terminal, and `NO_COLOR` unset (https://no-color.org). */
export const styled = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean =>
  stream.isTTY === true && (env["NO_COLOR"] === undefined || env["NO_COLOR"] === "") && env["TERM"] !== "dumb"

const wrap = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  if (line !== "") lines.push(line)
  return lines
}

/** The parts of a help text besides the flags. */
export interface HelpText {
  readonly usage: string
  readonly description: string
  /** Sections after the flags: a heading and its lines (or two-column rows). */
  readonly sections: ReadonlyArray<{ readonly heading: string; readonly rows: ReadonlyArray<readonly [string, string] | string> }>
}

/**
 * The help: usage, description, every flag with its value and default, then `sections`. Headings in
 * bold only when `bold` (a terminal without NO_COLOR); plain text otherwise.
 */
export const help = <T extends Table>(table: T, positional: Positional, text: HelpText, options: { readonly bold: boolean; readonly width?: number }): string => {
  const width = Math.max(60, Math.min(options.width ?? 100, 120))
  const heading = (h: string) => (options.bold ? `\u001b[1m${h}\u001b[0m` : h)
  const rows: Array<readonly [string, string]> = []
  for (const flag of Object.values(table)) {
    const left = flag.placeholder === undefined ? `--${flag.name}` : `--${flag.name} ${flag.placeholder}`
    const shown = flag.shownDefault === undefined ? "" : ` (default: ${flag.shownDefault})`
    const required = Either.isLeft(flag.absent) ? " (required)" : ""
    rows.push([left, `${flag.description}${shown}${required}`])
  }
  const columns = (items: ReadonlyArray<readonly [string, string]>) => {
    const leftWidth = Math.min(28, Math.max(...items.map(([l]) => l.length)) + 2)
    const out: Array<string> = []
    for (const [left, right] of items) {
      const wrapped = wrap(right, width - leftWidth - 2)
      if (left.length + 2 > leftWidth) {
        out.push(`  ${left}`)
        for (const line of wrapped) out.push(`${" ".repeat(leftWidth + 2)}${line}`)
      } else {
        wrapped.forEach((line, i) => out.push(`  ${(i === 0 ? left : "").padEnd(leftWidth)}${line}`))
      }
    }
    return out
  }
  const lines = [
    `${heading("Usage:")} ${text.usage}`,
    "",
    ...wrap(text.description, width),
    "",
    heading("Arguments:"),
    ...columns([[positional.name, positional.description]]),
    "",
    heading("Options:"),
    ...columns(rows)
  ]
  for (const section of text.sections) {
    lines.push("", heading(`${section.heading}:`))
    const pairs = section.rows.filter((r): r is readonly [string, string] => typeof r !== "string")
    if (pairs.length > 0) lines.push(...columns(pairs))
    for (const row of section.rows) if (typeof row === "string") lines.push(...wrap(row, width - 2).map((l) => `  ${l}`))
  }
  return lines.join("\n") + "\n"
}
