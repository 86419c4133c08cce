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
