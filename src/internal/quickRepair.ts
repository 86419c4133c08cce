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

const utf16 = new TextDecoder("utf-16le")

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9
const isIdentStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36
const isIdentPart = (c: number) => isIdentStart(c) || (c >= 48 && c <= 57)
const isNumberPart = (c: number) => (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69

/** Bare words read as literals (a Map: a word such as `constructor` must find nothing). */
const LITERALS: ReadonlyMap<string, string> = new Map([["true", "true"], ["false", "false"], ["null", "null"], ["True", "true"], ["False", "false"], ["None", "null"]])

const controlEscape = (c: number): string =>
  c === 10 ? "\\n" : c === 13 ? "\\r" : c === 9 ? "\\t" : c === 8 ? "\\b" : c === 12 ? "\\f" : "\\u" + c.toString(16).padStart(4, "0")

/**
 * The content of a string cut by the end of the text, without its trailing raw white space and
 * delimiters (`,` `]` `}`): jsonrepair reads a string cut there as ending before them (a separator
 * after a missing closing quote), and the two agree. Escaped white space stays.
 */
const trimWhiteEnd = (piece: string): string => {
  let end = piece.length
  for (; end > 0; end--) {
    const c = piece.charCodeAt(end - 1)
    if (!(isSpace(c) || c === 44 || c === 93 || c === 125)) break
  }
  return piece.slice(0, end)
}

/** How truncation is completed. */
export interface RepairOptions {
  /**
   * An object key at the end whose value has not begun (cut inside the key, before its colon, or
   * right after it) is left out, with its comma, instead of being completed with `null`: for
   * prefixes of an answer still being streamed. @default false
   */
  readonly dropCutKey?: boolean
}

/** Repairs `text`, or `undefined` when it holds something this pass does not fix. */
export const quickRepair = (text: string, options: RepairOptions = {}): Repaired | undefined => {
  // The output is the input with edits: unchanged runs are copied in one slice each, so a document
  // with few defects costs few string operations (bench/json-adversarial).
  // The output goes into one buffer of UTF-16 code units, decoded once at the end: building it from
  // string pieces left millions of small live strings, and the garbage collector took 70% of the
  // time on an 8 MB single-quoted document (bench/json-adversarial).
  let buffer = new Uint16Array(text.length + (text.length >> 3) + 64)
  let length = 0
  const room = (extra: number) => {
    if (length + extra <= buffer.length) return
    const larger = new Uint16Array(Math.max(buffer.length * 2, length + extra))
    larger.set(buffer.subarray(0, length))
    buffer = larger
  }
  const copy = (from: number, to: number) => {
    room(to - from)
    for (let k = from; k < to; k++) buffer[length++] = text.charCodeAt(k)
  }
  const put = (piece: string) => {
    room(piece.length)
    for (let k = 0; k < piece.length; k++) buffer[length++] = piece.charCodeAt(k)
  }
  let copyFrom = 0
  // Containers open: true for an object, false for an array.
  const stack: Array<boolean> = []
  let state: State = "value"
  // Read through a function: helpers change `state`, which the compiler's narrowing cannot see.
  const now = (): State => state
  /** Where the comma waiting to learn whether it is trailing sits (-1: none). */
  let commaAt = -1
  /** The waiting comma was left out of a run already copied: it must be written before the next item. */
  let commaHeld = false
  let truncated = false
  /** Where the output stood before the last key began (its comma not yet written). */
  let beforeKey = 0
  /** A key starts at `at`: the output up to it is written first, so that `beforeKey` is where it began. */
  const keyStarts = (at: number) => {
    flush(at)
    beforeKey = length
  }
  const n = text.length
  let i = 0

  /** Copies the input up to `upTo`, leaving out a waiting comma. */
  const flush = (upTo: number) => {
    if (upTo <= copyFrom) return
    if (commaAt >= copyFrom && commaAt < upTo) {
      copy(copyFrom, commaAt)
      copy(commaAt + 1, upTo)
      commaHeld = true
    } else copy(copyFrom, upTo)
    copyFrom = upTo
  }
  /** Replaces the input from `from` to `to` with `replacement`. */
  const edit = (from: number, to: number, replacement: string) => {
    flush(from)
    if (replacement !== "") put(replacement)
    copyFrom = Math.max(copyFrom, to)
  }
  /** A key or a value starts at `at`: the waiting comma, if any, belongs before it. */
  const beforeItem = (at: number) => {
    if (commaHeld) edit(at, at, ",")
    commaAt = -1
    commaHeld = false
  }
  /** After a value: what the container expects next. */
  const afterValue = () => {
    state = stack.length === 0 ? "end" : "comma"
  }

  /** The string whose opening quote is at `i`, rewritten with double quotes. False when the text ends inside it. */
  const readString = (open: number): boolean => {
    const close = open === QUOTE ? QUOTE : open === APOSTROPHE ? APOSTROPHE : open === LEFT_DOUBLE ? RIGHT_DOUBLE : RIGHT_SINGLE
    const straight = open === QUOTE
    const start = i
    // Where it ends: its closing quote, or (cut) the end of the text less trailing white space.
    let end = start + 1
    // Whether the content itself needs changes (most strings need none: one scan is enough).
    let dirty = false
    while (end < n) {
      const c = text.charCodeAt(end)
      if (c === close) break
      if (c === BACKSLASH) {
        if (!straight && end + 1 < n && text.charCodeAt(end + 1) === APOSTROPHE) dirty = true
        end += 2
        continue
      }
      if (c < 32 || (c === QUOTE && !straight)) dirty = true
      end++
    }
    const closed = end < n
    let contentEnd = closed ? end : n
    if (!closed) {
      contentEnd = start + 1 + trimWhiteEnd(text.slice(start + 1, n)).length
      dirty = true
    }
    if (!dirty) {
      // Only the quotes change, if they are not straight.
      if (!straight) {
        edit(start, start + 1, '"')
        edit(end, end + 1, '"')
      }
      i = end + 1
      return true
    }
    // The content as JSON needs it: rebuilt (one edit for the whole string) only when something changes.
    let rebuilt: string | undefined
    let run = start + 1
    const change = (k: number, skip: number, replacement: string) => {
      rebuilt = (rebuilt ?? "") + text.slice(run, k) + replacement
      run = k + skip
    }
    for (let k = start + 1; k < contentEnd; k++) {
      const c = text.charCodeAt(k)
      if (c === BACKSLASH) {
        if (k + 1 >= contentEnd) {
          // Cut inside an escape: the backslash goes.
          change(k, 1, "")
          break
        }
        if (!straight && text.charCodeAt(k + 1) === APOSTROPHE) change(k, 2, "'")
        k++
      } else if (c < 32) change(k, 1, controlEscape(c))
      else if (c === QUOTE && !straight) change(k, 1, '\\"')
    }
    const stop = closed ? end + 1 : n
    if (rebuilt !== undefined || !straight || !closed) {
      const content = rebuilt === undefined ? text.slice(start + 1, contentEnd) : rebuilt + text.slice(run, contentEnd)
      edit(start, stop, '"' + content + '"')
    }
    i = stop
    return closed
  }

  while (i < n) {
    const c = text.charCodeAt(i)
    if (isSpace(c)) {
      i++
      continue
    }
    if (c === SLASH && i + 1 < n && text.charCodeAt(i + 1) === SLASH) {
      const end = text.indexOf("\n", i)
      edit(i, end === -1 ? n : end, "")
      i = end === -1 ? n : end
      continue
    }
    if (c === SLASH && i + 1 < n && text.charCodeAt(i + 1) === STAR) {
      const end = text.indexOf("*/", i + 2)
      edit(i, end === -1 ? n : end + 2, "")
      i = end === -1 ? n : end + 2
      continue
    }
    if (c === QUOTE || c === APOSTROPHE || c === LEFT_DOUBLE || c === LEFT_SINGLE) {
      const at = now()
      if (at !== "key" && at !== "value") return undefined
      if (at === "key") keyStarts(i)
      beforeItem(i)
      if (!readString(c)) truncated = true
      if (at === "key") state = "colon"
      else afterValue()
      continue
    }
    if (c === 123 /* { */ || c === 91 /* [ */) {
      if (now() !== "value") return undefined
      beforeItem(i)
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
      if (commaAt >= 0 && !commaHeld) edit(commaAt, commaAt + 1, "")
      commaAt = -1
      commaHeld = false
      stack.pop()
      afterValue()
      i++
      continue
    }
    if (c === 44 /* , */) {
      if (now() !== "comma") return undefined
      commaAt = i
      state = stack[stack.length - 1] === true ? "key" : "value"
      i++
      continue
    }
    if (c === 58 /* : */) {
      if (now() !== "colon") return undefined
      state = "value"
      i++
      continue
    }
    if (isIdentStart(c)) {
      const start = i
      while (i < n && isIdentPart(text.charCodeAt(i))) i++
      const word = text.slice(start, i)
      const at = now()
      if (at === "key") {
        keyStarts(start)
        beforeItem(start)
        edit(start, start, '"')
        edit(i, i, '"')
        state = "colon"
        continue
      }
      const literal = LITERALS.get(word)
      if (at !== "value" || literal === undefined) return undefined
      beforeItem(start)
      if (literal !== word) edit(start, i, literal)
      afterValue()
      continue
    }
    if ((c >= 48 && c <= 57) || c === 45) {
      if (now() !== "value") return undefined
      beforeItem(i)
      while (i < n && isNumberPart(text.charCodeAt(i))) i++
      afterValue()
      continue
    }
    return undefined
  }

  // The end of the text: complete what is open (a trailing comma at the end goes).
  if (commaAt >= 0 && !commaHeld) edit(commaAt, commaAt + 1, "")
  flush(n)
  const end = now()
  if (end === "value" && stack.length === 0) return undefined
  if (options.dropCutKey === true && (end === "colon" || (end === "value" && stack[stack.length - 1] === true))) {
    // The key whose value has not begun goes, with the comma written before it.
    length = beforeKey
    truncated = true
  } else if (end === "colon") {
    put(":null")
    truncated = true
  } else if (end === "value" && stack[stack.length - 1] === true) {
    // After "key": the value is missing.
    put("null")
    truncated = true
  }
  for (let k = stack.length - 1; k >= 0; k--) {
    put(stack[k] ? "}" : "]")
    truncated = true
  }
  return { text: utf16.decode(buffer.subarray(0, length)), truncated }
}
