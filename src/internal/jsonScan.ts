/**
 * The scans `Json` runs over a model's text: where a string or comment ends (the quoting rules of
 * internal/quickRepair), how deep the brackets nest, and whether a parsed value nests within a limit.
 * @internal
 */

/** What `scanDepth` found. */
export interface Scan {
  /** Deepest nesting seen. */
  readonly maxDepth: number
  /** Where the nesting first went past the limit, if it did. */
  readonly tooDeepAt: number | undefined
}

/**
 * The quoting rules of the repair pass (internal/quickRepair), shared by every scan here: when a
 * string (`"…"`, `'…'`, `“…”`, `‘…’`, backslash escapes) or a comment (`//` to the end of the line,
 * `/* … *\/`) starts at `i`, the index of its last character (the text's end when it is cut there);
 * else -1.
 */
export const skipQuoted = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  const n = text.length
  const close = c === 34 /* " */ || c === 39 /* ' */ ? c : c === 0x201c ? 0x201d : c === 0x2018 ? 0x2019 : 0
  if (close !== 0) {
    for (let k = i + 1; k < n; k++) {
      const d = text.charCodeAt(k)
      if (d === 92 /* \ */) k++
      else if (d === close) return k
    }
    return n
  }
  if (c === 47 /* / */ && i + 1 < n) {
    const next = text.charCodeAt(i + 1)
    if (next === 47) {
      const end = text.indexOf("\n", i + 2)
      return end === -1 ? n : end
    }
    if (next === 42 /* * */) {
      const end = text.indexOf("*/", i + 2)
      return end === -1 ? n : end + 1
    }
  }
  return -1
}

/**
 * One pass over the text from its first bracket: the deepest nesting of `{`/`[` outside strings and
 * comments (`skipQuoted`).
 * It cannot know which quote in prose opens a string, so it is the early exit for the common case;
 * `withinDepth` checks the value that comes out.
 */
export const scanDepth = (text: string, limit: number): Scan => {
  let depth = 0
  let max = 0
  // From the first bracket: an apostrophe in the prose before it ("Here's") is not a quote.
  for (let i = Math.max(0, text.search(/[{[]/)); i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 123 /* { */ || c === 91 /* [ */) {
      depth++
      if (depth > max) {
        max = depth
        if (max > limit) return { maxDepth: max, tooDeepAt: i }
      }
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (depth > 0) depth--
    } else {
      const end = skipQuoted(text, i)
      if (end !== -1) i = end
    }
  }
  return { maxDepth: max, tooDeepAt: undefined }
}

/**
 * Whether `value` nests arrays and objects no deeper than `limit`: a walk with its own stack (a value
 * nested 100,000 deep must not overflow the call stack), stopping at the first level past the limit.
 */
export const withinDepth = (value: unknown, limit: number): boolean => {
  if (typeof value !== "object" || value === null) return true
  const stack: Array<object> = [value]
  const depths: Array<number> = [1]
  while (stack.length > 0) {
    const container = stack.pop()!
    const depth = depths.pop()!
    if (depth > limit) return false
    if (Array.isArray(container)) {
      for (let i = 0; i < container.length; i++) {
        const item: unknown = container[i]
        if (typeof item === "object" && item !== null) {
          stack.push(item)
          depths.push(depth + 1)
        }
      }
    } else {
      for (const key in container) {
        const item = (container as Record<string, unknown>)[key]
        if (typeof item === "object" && item !== null) {
          stack.push(item)
          depths.push(depth + 1)
        }
      }
    }
  }
  return true
}
