/** `shepherd run`'s output file: the whole-line writer, reading lines, scanning OUT, the reports. */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { LineWriter, type WriteFs } from "../src/cli/outputFile.js"
import * as OutputFile from "../src/cli/outputFile.js"
import * as BatchFile from "../src/cli/batchFile.js"

const dir = () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "shepherd-outfile-"))

/** A file in memory with `room` bytes free: writes at most `most` bytes a call, then ENOSPC once full. */
const fakeDisk = (initial: string, room: number, most: (call: number) => number) => {
  let content = Buffer.from(initial)
  let calls = 0
  const capacity = content.length + room
  const fs: WriteFs = {
    writeSync: (_fd, data, offset, length) => {
      const free = capacity - content.length
      if (free === 0) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })
      const n = Math.min(length, free, Math.max(1, most(calls++)))
      content = Buffer.concat([content, data.subarray(offset, offset + n)])
      return n
    },
    ftruncateSync: (_fd, length) => {
      content = content.subarray(0, length)
    }
  }
  return { fs, text: () => content.toString("utf8") }
}

const lineArb = FastCheck.string({ minLength: 0, maxLength: 40, unit: "grapheme" }).map((s) => JSON.stringify({ custom_id: s }) + "\n")

describe("LineWriter", () => {
  it.prop("13.14 short writes go on with the rest: every line lands whole", [
    FastCheck.array(lineArb, { minLength: 1, maxLength: 30 }),
    FastCheck.integer({ min: 1, max: 17 })
  ], ([lines, most]) => {
    const disk = fakeDisk("", 1 << 20, () => most)
    const writer = new LineWriter("out.jsonl", 3, 0, disk.fs)
    expect(writer.write(lines.join(""))).toEqual({ lines: lines.length, error: undefined })
    expect(disk.text()).toBe(lines.join(""))
  })

  it.prop("13.14 a disk that fills mid-write leaves whole lines only: the file is cut back to its last whole line, and the count is of those lines", [
    FastCheck.array(lineArb, { minLength: 1, maxLength: 20 }),
    FastCheck.array(lineArb, { minLength: 1, maxLength: 20 }),
    FastCheck.nat({ max: 2000 }),
    FastCheck.integer({ min: 1, max: 50 })
  ], ([before, batch, room, most]) => {
    const initial = before.join("")
    const disk = fakeDisk(initial, room, () => most)
    const writer = new LineWriter("out.jsonl", 3, Buffer.byteLength(initial), disk.fs)
    const text = batch.join("")
    const result = writer.write(text)
    const fits = Buffer.byteLength(text) <= room
    expect(result.error === undefined).toBe(fits)
    if (!fits) expect(result.error).toContain("ENOSPC")
    // What is in the file: the earlier lines, then exactly the first `result.lines` lines of the batch.
    expect(disk.text()).toBe(initial + batch.slice(0, result.lines).join(""))
    // Every line that fitted whole was kept.
    let bytes = 0
    let whole = 0
    for (const line of batch) {
      bytes += Buffer.byteLength(line)
      if (bytes <= room) whole++
    }
    expect(result.lines).toBe(whole)
  })

  it("13.14 when cutting back fails too, the error says so (the next run removes the cut line)", () => {
    const disk = fakeDisk("", 10, () => 100)
    const writer = new LineWriter("out.jsonl", 3, 0, {
      writeSync: disk.fs.writeSync,
      ftruncateSync: () => {
        throw new Error("EIO: i/o error, ftruncate")
      }
    })
    const result = writer.write(`${"x".repeat(20)}\n`)
    expect(result.lines).toBe(0)
    expect(result.error).toContain("ENOSPC")
    expect(result.error).toContain("its cut last line could not be removed (EIO: i/o error, ftruncate)")
  })

  it("13.14 a write that returns 0 bytes is an error, not an endless loop", () => {
    const writer = new LineWriter("out.jsonl", 3, 0, { writeSync: () => 0, ftruncateSync: () => {} })
    expect(writer.write("a\n")).toEqual({ lines: 0, error: "wrote 0 of 2 bytes, then nothing" })
  })
})

const lines = (path: string, maxLineBytes?: number) =>
  Effect.map(Stream.runCollect(BatchFile.readLines(path, { maxLineBytes })), (c) => Chunk.toReadonlyArray(c).map((l) => `${l.number}:${l.text}`))

describe("reading lines", () => {
  it.effect("13.17 a UTF-8 BOM at the start is skipped (line 1 only); CRLF ends a line; a last line without newline is read", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "in.jsonl")
      Fs.writeFileSync(path, "\ufeff{\"a\":1}\r\n\ufeffx\n\nlast")
      expect(yield* lines(path)).toEqual(["1:{\"a\":1}", "2:\ufeffx", "3:", "4:last"])
      const parsed = BatchFile.parseInput((yield* lines(path))[0]!.slice(2))
      expect(parsed !== undefined && Either.isLeft(parsed) && parsed.left).toBe("missing custom_id") // JSON, not "Unexpected token"
    }))

  it.effect.prop("13.14 lines split at any read boundary come back as written (multi-byte text included)", [
    FastCheck.array(FastCheck.string({ maxLength: 30000, unit: "grapheme" }).filter((s) => !s.includes("\n") && !s.includes("\r")), { minLength: 1, maxLength: 12 })
  ], ([texts]) =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "x.jsonl")
      Fs.writeFileSync(path, texts.join("\n") + "\n")
      const expected = texts.map((t, i) => `${i + 1}:${i === 0 && t.startsWith("\ufeff") ? t.slice(1) : t}`)
      expect(yield* lines(path)).toEqual(expected)
    }), { fastCheck: { numRuns: 30 } })

  it.effect("13.14 a line longer than the limit is a FileError naming it (not a RangeError), whether it ends or not", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "long.jsonl")
      Fs.writeFileSync(path, `short\n${"y".repeat(200_000)}\nnext\n`)
      const error = yield* Effect.flip(lines(path, 100_000))
      expect(error).toBeInstanceOf(BatchFile.FileError)
      expect(error.message).toBe(`${path}: line 2 is longer than 100000 bytes: this is not a JSONL batch file (or a line is damaged)`)
      Fs.writeFileSync(path, "z".repeat(300_000))
      expect((yield* Effect.flip(lines(path, 100_000))).message).toContain("line 1 is longer than 100000 bytes")
      expect(yield* lines(path, 300_000)).toHaveLength(1)
    }))
})

describe("scanning OUT", () => {
  const ok = (id: string) => JSON.stringify({ id: `batch_req_x_${id}`, custom_id: id, response: { status_code: 200, body: {} }, error: null })
  const retry = (id: string) => JSON.stringify({ id: `batch_req_x_${id}`, custom_id: id, response: null, error: { code: "timeout_attempt", message: "slow" } })
  const input = JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: {} })

  it.effect("13.12 the first line that is not a batch output line is reported: an input line, text, a JSON array", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "out.jsonl")
      for (const [text, number] of [[`${ok("a")}\n${input}\n`, 2], ["hello\n", 1], [`${ok("a")}\n${ok("b")}\n[1,2]\nhello\n`, 3]] as const) {
        Fs.writeFileSync(path, text)
        expect((yield* BatchFile.scanOutput(path)).foreign?.number).toBe(number)
      }
    }))

  it.effect("13.12 a cut last line alone is truncated in place (no free space needed); a damaged output line mid-file is dropped, not refused", () =>
    Effect.gen(function* () {
      const path = Path.join(dir(), "out.jsonl")
      Fs.writeFileSync(path, `${ok("a")}\n${ok("b").slice(0, 30)}`)
      const cut = yield* BatchFile.scanOutput(path)
      expect(cut).toMatchObject({ repair: "truncate", dropped: 1, foreign: undefined })
      yield* BatchFile.repairOutput(path, cut)
      expect(Fs.readFileSync(path, "utf8")).toBe(`${ok("a")}\n`)

      Fs.writeFileSync(path, `${ok("a")}\n${ok("b").slice(0, 30)}${ok("c")}\n${retry("d")}\n`)
      const damaged = yield* BatchFile.scanOutput(path)
      expect(damaged).toMatchObject({ repair: "rewrite", dropped: 2, foreign: undefined })
      expect(["a", "b", "c", "d"].filter((id) => damaged.ids.has(id))).toEqual(["a"])
    }))

  it.effect("13.14 a failed rewrite (no room for the temporary file) is a FileError; OUT is unchanged and no temporary file is left", () =>
    Effect.gen(function* () {
      const d = dir()
      const path = Path.join(d, "out.jsonl")
      const text = `${ok("a")}\n${retry("b")}\n`
      Fs.writeFileSync(path, text)
      const done = yield* BatchFile.scanOutput(path)
      // The temporary file's name is taken by a directory: opening it fails, as a full disk's write would.
      Fs.mkdirSync(`${path}.${process.pid}.tmp`)
      const error = yield* Effect.flip(BatchFile.repairOutput(path, done))
      expect(error.message).toMatch(/could not rewrite it for the rerun \(EISDIR.*\); it is unchanged/)
      expect(Fs.readFileSync(path, "utf8")).toBe(text)
      Fs.rmdirSync(`${path}.${process.pid}.tmp`)
      expect(Fs.readdirSync(d)).toEqual(["out.jsonl"])
    }))
})

describe("reports and leftovers", () => {
  it.effect("13.14 a report is written whole through a temporary file; a failure leaves no temporary file", () =>
    Effect.gen(function* () {
      const d = dir()
      const path = Path.join(d, "summary.json")
      yield* OutputFile.writeReport(path, "{}\n")
      expect(Fs.readFileSync(path, "utf8")).toBe("{}\n")
      const error = yield* Effect.flip(OutputFile.writeReport(Path.join(d, "missing", "s.json"), "{}\n"))
      expect(error.message).toContain("could not write it (ENOENT")
      expect(Fs.readdirSync(d)).toEqual(["summary.json"])
    }))

  it("13.14 temporary files of runs that died are removed; those of live processes are kept", () => {
    const d = dir()
    const out = Path.join(d, "out.jsonl")
    const dead = 2 ** 22 + 12345 // above Linux's pid_max: never a live process
    for (const name of [`out.jsonl.${dead}.tmp`, `out.jsonl.${process.pid}.tmp`, "out.jsonl.abc.tmp", "other.jsonl.1.tmp"]) Fs.writeFileSync(Path.join(d, name), "")
    expect(OutputFile.removeLeftovers(out)).toBe(1)
    expect(Fs.readdirSync(d).sort()).toEqual(["other.jsonl.1.tmp", "out.jsonl.abc.tmp", `out.jsonl.${process.pid}.tmp`].sort())
  })
})
