/** Server-sent events: any split of the bytes gives the same events; the standard's edge cases. */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import { Sse } from "../src/index.js"

const collect = (pieces: ReadonlyArray<Uint8Array>) =>
  Effect.runSync(Stream.runCollect(Sse.decode(Stream.fromIterable(pieces)))).pipe(Chunk.toArray)

const text = (s: string) => [new TextEncoder().encode(s)]

/** Splits bytes at the given cut points. */
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let last = 0
  for (const p of points) {
    out.push(bytes.slice(last, p))
    last = p
  }
  out.push(bytes.slice(last))
  return out
}

const eventArb = FastCheck.record({
  event: FastCheck.option(FastCheck.stringMatching(/^[a-z]{1,8}$/), { nil: undefined }),
  // data lines: any text without CR/LF per line (é, 中, emoji cross byte boundaries when split)
  lines: FastCheck.array(FastCheck.string({ unit: FastCheck.constantFrom("a", "b", " ", "{", "}", "\"", ":", "é", "中", "😀") }), { minLength: 1, maxLength: 3 }),
  comment: FastCheck.boolean()
})

describe("Sse.decode", () => {
  it.prop("any split of a valid event stream, with any line ends, parses to the same events", [
    FastCheck.array(eventArb, { maxLength: 8 }),
    FastCheck.constantFrom("\n", "\r\n", "\r"),
    FastCheck.array(FastCheck.nat(), { maxLength: 20 })
  ], ([events, eol, cuts]) => {
    let wire = ""
    for (const e of events) {
      if (e.comment) wire += `: keep-alive${eol}`
      if (e.event !== undefined) wire += `event: ${e.event}${eol}`
      for (const line of e.lines) wire += `data: ${line}${eol}`
      wire += eol
    }
    const bytes = new TextEncoder().encode(wire)
    // Every event has a data line, so each is dispatched (even when its data is empty).
    const expected = events.map((e) => ({ event: e.event, id: undefined, data: e.lines.join("\n") }))
    expect(collect([bytes])).toEqual(expected)
    expect(collect(split(bytes, cuts))).toEqual(expected)
    expect(collect(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(expected) // one byte at a time
  })

  it("the edge cases of the standard: no space after the colon, comments, a field without value, an unfinished last event", () => {
    const events = collect(text("data:a\ndata\n\n: comment only\n\nid: 7\ndata: b\n\nevent: x\ndata: [DONE]\n\ndata: never dispatched"))
    expect(events).toEqual([
      { event: undefined, id: undefined, data: "a\n" },
      { event: undefined, id: "7", data: "b" },
      { event: "x", id: undefined, data: "[DONE]" } // the id is reported on the event that sets it
    ])
  })
})

describe("Sse.makeDecoder({ maxEventBytes })", () => {
  const feedAll = (decoder: Sse.Decoder, pieces: ReadonlyArray<Uint8Array>) => [...pieces.flatMap((p) => decoder.feed(p)), ...decoder.end()]

  it.prop("13.8 events within the cap decode as without it, under any split; comments and blank lines do not count toward it", [
    FastCheck.array(FastCheck.string({ minLength: 1, maxLength: 40 }).filter((s) => !/[\r\n]/.test(s)), { minLength: 1, maxLength: 8 }),
    FastCheck.array(FastCheck.nat(), { maxLength: 20 })
  ], ([datas, cuts]) => {
    // Long runs of comments and blank lines between small events: far more bytes than the cap.
    const filler = `: ${"k".repeat(100)}\n\n\n`.repeat(20)
    const bytes = new TextEncoder().encode(datas.map((d) => `${filler}data: ${d}\n\n`).join(""))
    const decoder = Sse.makeDecoder({ maxEventBytes: 256 })
    expect(feedAll(decoder, split(bytes, cuts))).toEqual(datas.map((data) => ({ event: undefined, id: undefined, data })))
    expect(decoder.overflowed).toBe(false)
  })

  it("13.8 an event past the cap (one endless line, or many data lines) overflows; the events before it are kept, nothing after", () => {
    const line = Sse.makeDecoder({ maxEventBytes: 1000 })
    expect(line.feed(new TextEncoder().encode("data: ok\n\ndata: "))).toEqual([{ event: undefined, id: undefined, data: "ok" }])
    for (let i = 0; i < 10 && !line.overflowed; i++) expect(line.feed(new TextEncoder().encode("x".repeat(300)))).toEqual([])
    expect(line.overflowed).toBe(true)
    expect(line.feed(new TextEncoder().encode("\n\ndata: after\n\n"))).toEqual([])
    expect(line.end()).toEqual([])
    const lines = Sse.makeDecoder({ maxEventBytes: 1000 })
    lines.feed(new TextEncoder().encode("data: 0123456789\n".repeat(200)))
    expect(lines.overflowed).toBe(true)
    const uncapped = Sse.makeDecoder()
    uncapped.feed(new TextEncoder().encode("data: " + "x".repeat(100_000)))
    expect(uncapped.overflowed).toBe(false)
  })
})
