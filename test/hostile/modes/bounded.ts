/**
 * Hostile modes for issue 13, items B.7, B.8 and D.16: answers without an end or too large to hold,
 * streams that never deliver an event, and a whole answer followed by a reset.
 */
import type * as Http from "node:http"
import * as Hostile from "../server.js"

const PIECE = Buffer.alloc(64 * 1024, "a")

/** Writes `piece` as fast as the client reads it, `bytes` in all (or forever), then runs `done`; stops when the socket closes. */
const pump = (res: Http.ServerResponse, piece: Buffer, bytes: number, done: () => void) => {
  let left = bytes
  const write = () => {
    while (!res.destroyed && left > 0) {
      const chunk = left >= piece.length ? piece : piece.subarray(0, left)
      left -= chunk.length
      if (!res.write(chunk)) {
        res.once("drain", write)
        return
      }
    }
    if (!res.destroyed) done()
  }
  write()
}

/**
 * A 200 whose body is `bytes` long: a JSON string that would decode, if the client held it all.
 * With `contentLength` the size is announced in the headers; without it the body is chunked.
 */
export const hugeBody = (bytes: number, contentLength: boolean): Hostile.HttpMode => (_, res) => {
  const head = '{"pad":"'
  const tail = '"}'
  res.writeHead(200, { "content-type": "application/json", ...(contentLength ? { "content-length": String(bytes) } : {}) })
  res.write(head)
  pump(res, PIECE, bytes - head.length - tail.length, () => res.end(tail))
}

/** A 200 (chunked) whose body never ends: it is written for as long as the client reads. */
export const endlessBody: Hostile.HttpMode = (_, res) => {
  res.writeHead(200, { "content-type": "application/json" })
  res.write('{"pad":"')
  pump(res, PIECE, Number.POSITIVE_INFINITY, () => {})
}

const sseHead = (res: Http.ServerResponse) =>
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })

/** A stream whose first event is one `data:` line that never ends. */
export const endlessDataLine: Hostile.HttpMode = (_, res) => {
  sseHead(res)
  res.write("data: ")
  pump(res, PIECE, Number.POSITIVE_INFINITY, () => {})
}

/** A stream that sends only keep-alive comments (and blank lines), every `everyMillis`, and never an event. */
export const keepAliveForever = (everyMillis: number): Hostile.HttpMode => (_, res) => {
  sseHead(res)
  const timer = setInterval(() => res.write(": keep-alive\n\n"), everyMillis)
  res.on("close", () => clearInterval(timer))
}

/** One `chat.completion.chunk` event with `content`. */
export const chunkEvent = (content: string) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-hostile",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: "gpt-4.1-mini",
    choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }]
  })}\n\n`

/** A stream that sends a chunk every `everyMillis`, forever: each gap is short, the whole is endless. */
export const chunksForever = (everyMillis: number): Hostile.HttpMode => (_, res) => {
  sseHead(res)
  res.write(chunkEvent("first"))
  const timer = setInterval(() => res.write(chunkEvent("more")), everyMillis)
  res.on("close", () => clearInterval(timer))
}

/** A stream that sends chunks as fast as the client reads them, forever (each event small). */
export const endlessStream: Hostile.HttpMode = (_, res) => {
  sseHead(res)
  const events = Buffer.from(chunkEvent("x".repeat(200)).repeat(200))
  pump(res, events, Number.POSITIVE_INFINITY, () => {})
}

const completionText = () => JSON.stringify(Hostile.completion("whole"))

/**
 * The whole answer with its Content-Length, then a reset (RST) once the bytes have left: the client
 * has every byte it was promised. `destroy` closes without a reset instead.
 */
export const wholeThenReset = (how: "reset" | "destroy") => ({
  raw: (socket: import("node:net").Socket) => {
    const body = completionText()
    socket.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: keep-alive\r\n\r\n${body}`,
      () => (how === "reset" ? socket.resetAndDestroy() : socket.destroy())
    )
  }
})

/**
 * A chunked answer whose one chunk holds the whole JSON completion, then a reset instead of the
 * final `0` chunk: the body is complete as JSON, not as HTTP. `truncated` cuts the JSON short too.
 */
export const chunkedWithoutEnd = (truncated: boolean) => ({
  raw: (socket: import("node:net").Socket) => {
    const whole = completionText()
    const body = truncated ? whole.slice(0, whole.length - 20) : whole
    socket.write(
      `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`,
      () => socket.resetAndDestroy()
    )
  }
})
