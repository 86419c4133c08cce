/**
 * One linear, string-aware pass that fixes the defects models produce most, for `JSON.parse` to read:
 * trailing commas before `}`/`]`, single-quoted and curly-quoted strings and keys, Python `True`,
 * `False`, `None`, `//` and `/* *\/` comments, unquoted keys, raw control characters inside strings,
 * and truncation (an unterminated last string, a dangling key, open brackets).
 *
 * It follows the JSON grammar as it goes (what may come next: a key, a colon, a value, a comma or a
 * close) and gives up (`undefined`) on anything else, so whatever it accepts means what it says;
 * `jsonrepair` (quadratic on some of these same defects, bench/json-adversarial) handles the rest.
 * @internal
 */

/** The repaired text, and whether anything had to be added at the end (a quote, a value, brackets). */
export interface Repaired {
  readonly text: string
  readonly truncated: boolean
}

type State = "value" | "key" | "colon" | "comma" | "end"

const QUOTE = 34
const APOSTROPHE = 39
const BACKSLASH = 92
const SLASH = 47
const STAR = 42
const LEFT_DOUBLE = 0x201c
const RIGHT_DOUBLE = 0x201d
const LEFT_SINGLE = 0x2018
const RIGHT_SINGLE = 0x2019

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9
const isIdentStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36
const isIdentPart = (c: number) => isIdentStart(c) || (c >= 48 && c <= 57)
const isNumberPart = (c: number) => (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69

const LITERALS: Record<string, string> = { true: "true", false: "false", null: "null", True: "true", False: "false", None: "null" }

const controlEscape = (c: number): string =>
  c === 10 ? "\\n" : c === 13 ? "\\r" : c === 9 ? "\\t" : c === 8 ? "\\b" : c === 12 ? "\\f" : "\\u" + c.toString(16).padStart(4, "0")

/** `piece` without its trailing white space, raw (space, tab, CR, LF) or escaped (`\t`, `\n`, `\r`). */
const trimWhiteEnd = (piece: string): string => {
  let end = piece.length
  while (end > 0) {
    const c = piece.charCodeAt(end - 1)
    if (isSpace(c)) {
      end--
      continue
    }
    if ((c === 116 || c === 110 || c === 114) && end >= 2 && piece.charCodeAt(end - 2) === BACKSLASH) {
      // An escape only if the backslashes before the letter are odd in number.
      let slashes = 0
      for (let k = end - 2; k >= 0 && piece.charCodeAt(k) === BACKSLASH; k--) slashes++
      if (slashes % 2 === 1) {
        end -= 2
        continue
      }
    }
    break
  }
  return piece.slice(0, end)
}

/** Repairs `text`, or `undefined` when it holds something this pass does not fix. */
export const quickRepair = (text: string): Repaired | undefined => {
  const out: Array<string> = []
  // Containers open: true for an object, false for an array.
  const stack: Array<boolean> = []
  let state: State = "value"
  // Read through a function: `afterValue` changes `state`, which the compiler's narrowing cannot see.
  const now = (): State => state
  let pendingComma = false
  let truncated = false
  const n = text.length
  let i = 0

  /** After a value: what the container expects next. */
  const afterValue = () => {
    state = stack.length === 0 ? "end" : "comma"
  }
  /** A key or a value is about to be written: the comma before it, if one is owed. */
  const beforeItem = () => {
    if (pendingComma) {
      out.push(",")
      pendingComma = false
    }
  }

  /**
   * A string from `i` (at its opening quote) to its closing quote, written with double quotes; raw
   * control characters escaped. Returns false when the text ends inside it (then it is closed).
   */
  const readString = (open: number): boolean => {
    const close = open === QUOTE ? QUOTE : open === APOSTROPHE ? APOSTROPHE : open === LEFT_DOUBLE ? RIGHT_DOUBLE : RIGHT_SINGLE
    const straight = open === QUOTE
    out.push('"')
    i++
    let run = i
    while (i < n) {
      const c = text.charCodeAt(i)
      if (c === close) {
        out.push(text.slice(run, i), '"')
        i++
        return true
      }
      if (c === BACKSLASH) {
        if (i + 1 >= n) {
          // Cut inside an escape: drop the backslash.
          out.push(text.slice(run, i))
          run = n
          i = n
          break
        }
        const next = text.charCodeAt(i + 1)
        if (!straight && next === APOSTROPHE) {
          // \' is not a JSON escape: the apostrophe alone.
          out.push(text.slice(run, i), "'")
          i += 2
          run = i
          continue
        }
        i += 2
        continue
      }
      if (c < 32) {
        out.push(text.slice(run, i), controlEscape(c))
        i++
        run = i
        continue
      }
      if (c === QUOTE && !straight) {
        out.push(text.slice(run, i), '\\"')
        i++
        run = i
        continue
      }
      i++
    }
    // Cut inside the string: its trailing white space goes (as jsonrepair does: raw or escaped), then the quote.
    out.push(text.slice(run, i))
    while (out.length > 0 && out[out.length - 1] !== '"') {
      const trimmed = trimWhiteEnd(out[out.length - 1]!)
      if (trimmed === "") {
        out.pop()
        continue
      }
      out[out.length - 1] = trimmed
      break
    }
    out.push('"')
    return false
  }

  while (i < n) {
    const c = text.charCodeAt(i)
    if (isSpace(c)) {
      const start = i
      while (i < n && isSpace(text.charCodeAt(i))) i++
      out.push(text.slice(start, i))
      continue
    }
    if (c === SLASH && i + 1 < n && text.charCodeAt(i + 1) === SLASH) {
      const end = text.indexOf("\n", i)
      i = end === -1 ? n : end
      continue
    }
    if (c === SLASH && i + 1 < n && text.charCodeAt(i + 1) === STAR) {
      const end = text.indexOf("*/", i + 2)
      i = end === -1 ? n : end + 2
      continue
    }
    if (c === QUOTE || c === APOSTROPHE || c === LEFT_DOUBLE || c === LEFT_SINGLE) {
      if (state !== "key" && state !== "value") return undefined
      beforeItem()
      const closed = readString(c)
      if (!closed) truncated = true
      if (state === "key") state = "colon"
      else afterValue()
      continue
    }
    if (c === 123 /* { */ || c === 91 /* [ */) {
      if (state !== "value") return undefined
      beforeItem()
      out.push(c === 123 ? "{" : "[")
      stack.push(c === 123)
      state = c === 123 ? "key" : "value"
      i++
      continue
    }
    if (c === 125 /* } */ || c === 93 /* ] */) {
      const isObject = c === 125
      if (stack.length === 0 || stack[stack.length - 1] !== isObject) return undefined
      // Allowed: right after the opening bracket, after a value, or after a trailing comma (dropped).
      const at = now()
      if (isObject ? at !== "key" && at !== "comma" : at !== "value" && at !== "comma") return undefined
      pendingComma = false
      stack.pop()
      out.push(isObject ? "}" : "]")
      afterValue()
      i++
      continue
    }
    if (c === 44 /* , */) {
      if (now() !== "comma") return undefined
      pendingComma = true
      state = stack[stack.length - 1] === true ? "key" : "value"
      i++
      continue
    }
    if (c === 58 /* : */) {
      if (state !== "colon") return undefined
      out.push(":")
      state = "value"
      i++
      continue
    }
    if (isIdentStart(c)) {
      const start = i
      while (i < n && isIdentPart(text.charCodeAt(i))) i++
      const word = text.slice(start, i)
      if (state === "key") {
        beforeItem()
        out.push('"', word, '"')
        state = "colon"
        continue
      }
      const literal = LITERALS[word]
      if (state !== "value" || literal === undefined) return undefined
      beforeItem()
      out.push(literal)
      afterValue()
      continue
    }
    if ((c >= 48 && c <= 57) || c === 45) {
      if (state !== "value") return undefined
      beforeItem()
      const start = i
      while (i < n && isNumberPart(text.charCodeAt(i))) i++
      out.push(text.slice(start, i))
      afterValue()
      continue
    }
    return undefined
  }

  // The end of the text: complete what is open.
  if (state === "value" && stack.length === 0) return undefined
  if (state === "colon") {
    out.push(":null")
    truncated = true
  } else if (state === "value" && stack[stack.length - 1] === true) {
    // After "key": the value is missing.
    out.push("null")
    truncated = true
  }
  for (let k = stack.length - 1; k >= 0; k--) {
    out.push(stack[k] ? "}" : "]")
    truncated = true
  }
  return { text: out.join(""), truncated }
}
