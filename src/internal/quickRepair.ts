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

/** The output: the input with edits, in one buffer of UTF-16 code units decoded once at the end. */
class Output {
  // Building it from string pieces left millions of small live strings, and the garbage collector
  // took 70% of the time on an 8 MB single-quoted document (bench/json-adversarial).
  buffer: Uint16Array
  length = 0
  constructor(readonly text: string) {
    this.buffer = new Uint16Array(text.length + (text.length >> 3) + 64)
  }
  room(extra: number) {
    if (this.length + extra <= this.buffer.length) return
    const larger = new Uint16Array(Math.max(this.buffer.length * 2, this.length + extra))
    larger.set(this.buffer.subarray(0, this.length))
    this.buffer = larger
  }
  copy(from: number, to: number) {
    this.room(to - from)
    const { buffer, text } = this
    for (let k = from; k < to; k++) buffer[this.length++] = text.charCodeAt(k)
  }
  put(piece: string) {
    this.room(piece.length)
    const { buffer } = this
    for (let k = 0; k < piece.length; k++) buffer[this.length++] = piece.charCodeAt(k)
  }
  decode(): string {
    return utf16.decode(this.buffer.subarray(0, this.length))
  }
}

/** Where a string whose opening quote is at `start` ends, and whether its content needs changes. */
const scanString = (text: string, start: number, close: number, straight: boolean) => {
  const n = text.length
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
  if (closed) return { end, closed, contentEnd: end, dirty }
  return { end, closed, contentEnd: start + 1 + trimWhiteEnd(text.slice(start + 1, n)).length, dirty: true }
}

/**
 * The content from `from` to `to` as JSON needs it (control characters and inner double quotes
 * escaped, `\'` unescaped, a backslash cut at the end dropped); `undefined` when nothing changes.
 */
const rewriteContent = (text: string, from: number, to: number, straight: boolean): string | undefined => {
  let rebuilt: string | undefined
  let run = from
  const change = (k: number, skip: number, replacement: string) => {
    rebuilt = (rebuilt ?? "") + text.slice(run, k) + replacement
    run = k + skip
  }
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k)
    if (c === BACKSLASH) {
      if (k + 1 >= to) {
        // Cut inside an escape: the backslash goes.
        change(k, 1, "")
        break
      }
      if (!straight && text.charCodeAt(k + 1) === APOSTROPHE) change(k, 2, "'")
      k++
    } else if (c < 32) change(k, 1, controlEscape(c))
    else if (c === QUOTE && !straight) change(k, 1, '\\"')
  }
  return rebuilt === undefined ? undefined : rebuilt + text.slice(run, to)
}

/** One pass over `text`: the grammar's state, the edits so far, and the position `i`. */
class Repairer {
  readonly out: Output
  readonly n: number
  i = 0
  // The output is the input with edits: unchanged runs are copied in one slice each, so a document
  // with few defects costs few string operations (bench/json-adversarial).
  copyFrom = 0
  /** Containers open: true for an object, false for an array. */
  readonly stack: Array<boolean> = []
  state: State = "value"
  /** Where the comma waiting to learn whether it is trailing sits (-1: none). */
  commaAt = -1
  /** The waiting comma was left out of a run already copied: it must be written before the next item. */
  commaHeld = false
  truncated = false
  /** Where the output stood before the last key began (its comma not yet written). */
  beforeKey = 0

  constructor(readonly text: string) {
    this.out = new Output(text)
    this.n = text.length
  }

  /** A key starts at `at`: the output up to it is written first, so that `beforeKey` is where it began. */
  keyStarts(at: number) {
    this.flush(at)
    this.beforeKey = this.out.length
  }
  /** Copies the input up to `upTo`, leaving out a waiting comma. */
  flush(upTo: number) {
    if (upTo <= this.copyFrom) return
    if (this.commaAt >= this.copyFrom && this.commaAt < upTo) {
      this.out.copy(this.copyFrom, this.commaAt)
      this.out.copy(this.commaAt + 1, upTo)
      this.commaHeld = true
    } else this.out.copy(this.copyFrom, upTo)
    this.copyFrom = upTo
  }
  /** Replaces the input from `from` to `to` with `replacement`. */
  edit(from: number, to: number, replacement: string) {
    this.flush(from)
    if (replacement !== "") this.out.put(replacement)
    this.copyFrom = Math.max(this.copyFrom, to)
  }
  /** A key or a value starts at `at`: the waiting comma, if any, belongs before it. */
  beforeItem(at: number) {
    if (this.commaHeld) this.edit(at, at, ",")
    this.commaAt = -1
    this.commaHeld = false
  }
  /** After a value: what the container expects next. */
  afterValue() {
    this.state = this.stack.length === 0 ? "end" : "comma"
  }

  /** The string whose opening quote is at `i`, rewritten with double quotes. False when the text ends inside it. */
  readString(open: number): boolean {
    const close = open === QUOTE ? QUOTE : open === APOSTROPHE ? APOSTROPHE : open === LEFT_DOUBLE ? RIGHT_DOUBLE : RIGHT_SINGLE
    const straight = open === QUOTE
    const start = this.i
    const { closed, contentEnd, dirty, end } = scanString(this.text, start, close, straight)
    if (!dirty) {
      // Only the quotes change, if they are not straight.
      if (!straight) {
        this.edit(start, start + 1, '"')
        this.edit(end, end + 1, '"')
      }
      this.i = end + 1
      return true
    }
    // The content as JSON needs it: rebuilt (one edit for the whole string) only when something changes.
    const rebuilt = rewriteContent(this.text, start + 1, contentEnd, straight)
    const stop = closed ? end + 1 : this.n
    if (rebuilt !== undefined || !straight || !closed) {
      const content = rebuilt === undefined ? this.text.slice(start + 1, contentEnd) : rebuilt
      this.edit(start, stop, '"' + content + '"')
    }
    this.i = stop
    return closed
  }

  /** A comment at `i` (`//` or `/*`) is dropped; false when there is none. */
  comment(c: number): boolean {
    if (c !== SLASH || this.i + 1 >= this.n) return false
    const { i, text, n } = this
    const next = text.charCodeAt(i + 1)
    if (next === SLASH) {
      const end = text.indexOf("\n", i)
      this.edit(i, end === -1 ? n : end, "")
      this.i = end === -1 ? n : end
      return true
    }
    if (next === STAR) {
      const end = text.indexOf("*/", i + 2)
      this.edit(i, end === -1 ? n : end + 2, "")
      this.i = end === -1 ? n : end + 2
      return true
    }
    return false
  }

  /** A string at `i`, as a key or a value; false when none may come here. */
  quoted(c: number): boolean {
    const at = this.state
    if (at !== "key" && at !== "value") return false
    if (at === "key") this.keyStarts(this.i)
    this.beforeItem(this.i)
    if (!this.readString(c)) this.truncated = true
    if (at === "key") this.state = "colon"
    else this.afterValue()
    return true
  }

  /** A closing bracket at `i`; false when it does not close what is open. */
  close(c: number): boolean {
    const isObject = c === 125
    const { stack } = this
    if (stack.length === 0 || stack[stack.length - 1] !== isObject) return false
    // Allowed: right after the opening bracket, after a value, or after a trailing comma (dropped).
    const at = this.state
    if (isObject ? at !== "key" && at !== "comma" : at !== "value" && at !== "comma") return false
    if (this.commaAt >= 0 && !this.commaHeld) this.edit(this.commaAt, this.commaAt + 1, "")
    this.commaAt = -1
    this.commaHeld = false
    stack.pop()
    this.afterValue()
    this.i++
    return true
  }

  /** A bare word at `i`: an unquoted key, or a literal (`True`, `None`...); false otherwise. */
  word(): boolean {
    const { text, n } = this
    const start = this.i
    while (this.i < n && isIdentPart(text.charCodeAt(this.i))) this.i++
    const end = this.i
    const word = text.slice(start, end)
    const at = this.state
    if (at === "key") {
      this.keyStarts(start)
      this.beforeItem(start)
      this.edit(start, start, '"')
      this.edit(end, end, '"')
      this.state = "colon"
      return true
    }
    const literal = LITERALS.get(word)
    if (at !== "value" || literal === undefined) return false
    this.beforeItem(start)
    if (literal !== word) this.edit(start, end, literal)
    this.afterValue()
    return true
  }

  /** The token at `i`; false when it is not one this pass fixes. */
  step(c: number): boolean {
    if (this.comment(c)) return true
    if (c === QUOTE || c === APOSTROPHE || c === LEFT_DOUBLE || c === LEFT_SINGLE) return this.quoted(c)
    if (c === 123 /* { */ || c === 91 /* [ */) {
      if (this.state !== "value") return false
      this.beforeItem(this.i)
      this.stack.push(c === 123)
      this.state = c === 123 ? "key" : "value"
      this.i++
      return true
    }
    if (c === 125 /* } */ || c === 93 /* ] */) return this.close(c)
    if (c === 44 /* , */) {
      if (this.state !== "comma") return false
      this.commaAt = this.i
      this.state = this.stack[this.stack.length - 1] === true ? "key" : "value"
      this.i++
      return true
    }
    if (c === 58 /* : */) {
      if (this.state !== "colon") return false
      this.state = "value"
      this.i++
      return true
    }
    if (isIdentStart(c)) return this.word()
    if ((c >= 48 && c <= 57) || c === 45) {
      if (this.state !== "value") return false
      this.beforeItem(this.i)
      while (this.i < this.n && isNumberPart(this.text.charCodeAt(this.i))) this.i++
      this.afterValue()
      return true
    }
    return false
  }

  /** The end of the text: complete what is open (a trailing comma at the end goes). */
  finish(options: RepairOptions): Repaired | undefined {
    const { out, stack } = this
    if (this.commaAt >= 0 && !this.commaHeld) this.edit(this.commaAt, this.commaAt + 1, "")
    this.flush(this.n)
    const end = this.state
    if (end === "value" && stack.length === 0) return undefined
    if (options.dropCutKey === true && (end === "colon" || (end === "value" && stack[stack.length - 1] === true))) {
      // The key whose value has not begun goes, with the comma written before it.
      out.length = this.beforeKey
      this.truncated = true
    } else if (end === "colon") {
      out.put(":null")
      this.truncated = true
    } else if (end === "value" && stack[stack.length - 1] === true) {
      // After "key": the value is missing.
      out.put("null")
      this.truncated = true
    }
    for (let k = stack.length - 1; k >= 0; k--) {
      out.put(stack[k] ? "}" : "]")
      this.truncated = true
    }
    return { text: out.decode(), truncated: this.truncated }
  }
}

/** Repairs `text`, or `undefined` when it holds something this pass does not fix. */
export const quickRepair = (text: string, options: RepairOptions = {}): Repaired | undefined => {
  const r = new Repairer(text)
  const n = text.length
  while (r.i < n) {
    const c = text.charCodeAt(r.i)
    if (isSpace(c)) r.i++
    else if (!r.step(c)) return undefined
  }
  return r.finish(options)
}
