/**
 * Reading the lines of a batch file (input or output), lazily, and the error of a file that cannot
 * be read or written.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"

/** A line of a file, numbered from 1. */
export interface Line {
  readonly number: number
  readonly text: string
}

/** Failure to read or write a file, with its path. */
export class FileError extends Schema.TaggedError<FileError>()("FileError", { path: Schema.String, detail: Schema.String }) {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/**
 * The longest line read, in bytes (256 MiB). A longer line cannot become a string (V8 stops at 2^29
 * characters, about 512 MB): it is refused with a `FileError` naming the line, not a `RangeError`.
 * The largest legitimate line, a batch output of 2,048 embeddings of 3,072 dimensions, is ~130 MB.
 */
export const MAX_LINE_BYTES = 256 * 1024 * 1024

/** Options of `readLines`. */
export interface ReadOptions {
  /** Longest line accepted, in bytes. @default MAX_LINE_BYTES */
  readonly maxLineBytes?: number | undefined
}

const lineTooLong = (path: string, number: number, max: number) =>
  new FileError({ path, detail: `line ${number} is longer than ${max} bytes: this is not a JSONL batch file (or a line is damaged)` })

/** A line's text: without its `\r` (CRLF files), and without the UTF-8 byte order mark at the start of the file. */
const lineText = (bytes: Buffer, start: number, end: number, number: number): string => {
  if (end > start && bytes[end - 1] === 0x0d) end--
  if (number === 1 && end - start >= 3 && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf) start += 3
  return bytes.toString("utf8", start, end)
}

/** The lines of a file, a read buffer's worth at a time. */
async function* lineBatches(path: string, max: number): AsyncGenerator<Array<Line>> {
  const stream = Fs.createReadStream(path, { highWaterMark: 1 << 16 })
  let number = 0
  // The start of the current line, when it began in an earlier buffer.
  let parts: Array<Buffer> = []
  let partBytes = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines: Array<Line> = []
      let start = 0
      let newline: number
      while ((newline = chunk.indexOf(0x0a, start)) !== -1) {
        number++
        if (partBytes === 0) {
          lines.push({ number, text: lineText(chunk, start, newline, number) })
        } else {
          if (partBytes + newline - start > max) throw lineTooLong(path, number, max)
          parts.push(chunk.subarray(start, newline))
          const whole = Buffer.concat(parts)
          lines.push({ number, text: lineText(whole, 0, whole.length, number) })
          parts = []
          partBytes = 0
        }
        start = newline + 1
      }
      if (start < chunk.length) {
        partBytes += chunk.length - start
        if (partBytes > max) throw lineTooLong(path, number + 1, max)
        parts.push(chunk.subarray(start))
      }
      if (lines.length > 0) yield lines
    }
    if (partBytes > 0) {
      const whole = Buffer.concat(parts)
      yield [{ number: number + 1, text: lineText(whole, 0, whole.length, number + 1) }]
    }
  } finally {
    stream.destroy()
  }
}

/**
 * The lines of a file, lazily (a 1M-line file is never held whole). A last line without `\n` is
 * included; `\r\n` ends a line as `\n` does; a UTF-8 byte order mark at the start is skipped. A line
 * longer than `maxLineBytes` fails the stream with a `FileError` naming it.
 */
export const readLines = (path: string, options: ReadOptions = {}): Stream.Stream<Line, FileError> =>
  Stream.suspend(() =>
    Stream.fromAsyncIterable(
      lineBatches(path, options.maxLineBytes ?? MAX_LINE_BYTES),
      (e) => (e instanceof FileError ? e : new FileError({ path, detail: e instanceof Error ? e.message : String(e) }))
    ).pipe(Stream.mapConcat((lines) => lines))
  )

/** Calls `f` on every line of a file, a chunk of lines per step (no effect per line). */
export const forEachLine = (path: string, f: (line: Line) => void, options: ReadOptions = {}): Effect.Effect<void, FileError> =>
  Stream.runForEachChunk(readLines(path, options), (chunk) =>
    Effect.sync(() => {
      for (const line of chunk) f(line)
    }))

/** A line of a file, as a short excerpt for messages. */
export const excerpt = (text: string, max = 80): string => JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text)
