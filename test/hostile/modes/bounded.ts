/**
 * Hostile modes for issue 13, items B.7, B.8 and D.16: answers without an end or too large to hold,
 * streams that never deliver an event, and a whole answer followed by a reset.
 */
import type * as Http from "node:http"
import * as Hostile from "../server.js"

const PIECE = Buffer.alloc(64 * 1024, "a")

/** Writes `piece` as fast as the client reads it, `bytes` in all, then runs `done`; stops when the socket closes. */
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
 * Writes `piece` forever, one each millisecond at most (about 64 MB/s with 64 KB pieces): fast enough
 * to pass any limit soon, slow enough that a client without limits is not killed before its test
 * gives up on it. Stops when the socket closes.
 */
const forever = (res: Http.ServerResponse, piece: Buffer) => {
  const timer = setInterval(() => {
    if (res.destroyed) clearInterval(timer)
    else if (res.writableNeedDrain === false) res.write(piece)
  }, 1)
  res.on("close", () => clearInterval(timer))
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

/** A 200 (chunked) whose body never ends. */
export const endlessBody: Hostile.HttpMode = (_, res) => {
  res.writeHead(200, { "content-type": "application/json" })
  res.write('{"pad":"')
  forever(res, PIECE)
}

const sseHead = (res: Http.ServerResponse) =>
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })

/** A stream whose first event is one `data:` line that never ends. */
export const endlessDataLine: Hostile.HttpMode = (_, res) => {
  sseHead(res)
  res.write("data: ")
  forever(res, PIECE)
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

/** A stream of small chunk events that never ends. */
export const endlessStream: Hostile.HttpMode = (_, res) => {
  sseHead(res)
  const events = Buffer.from(chunkEvent("x".repeat(200)).repeat(200))
  forever(res, events)
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

/** An honest completion whose content is `chars` long, with or without its length announced. */
export const completionOf = (chars: number, contentLength: boolean): Hostile.HttpMode => (_, res) => {
  const body = JSON.stringify(Hostile.completion("c".repeat(chars)))
  res.writeHead(200, { "content-type": "application/json", ...(contentLength ? { "content-length": String(Buffer.byteLength(body)) } : {}) })
  res.end(body)
}

/** An honest stream of `count` chunks, keep-alive comments between them, then `[DONE]`. */
export const finiteStream = (count: number): Hostile.HttpMode => (_, res) => {
  sseHead(res)
  for (let i = 0; i < count; i++) res.write(`: keep-alive\n\n${chunkEvent(`piece ${i}`)}`)
  res.end("data: [DONE]\n\n")
}
