/**
 * The mock server's streamed answers: a completion as server-sent events, chunk by chunk, at the
 * configured pace, with the streaming fault (stall, disconnect, error event) if one is due.
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Http from "node:http"
import type * as ChatSchema from "../../ChatSchema.js"
import type { Fault, JournalEntry, StreamingOptions } from "../MockServer.js"
import * as Content from "./content.js"
import type { State } from "./state.js"

/** A fault of streamed answers. */
export type StreamFault = Extract<Fault, { type: "stream_stall" | "stream_disconnect" | "stream_error" }>

/** Whether a fault is one of streamed answers. */
export const isStreamFault = (fault: Fault): fault is StreamFault => fault.type.startsWith("stream_")

const STREAM_ERROR_EVENT = `data: ${JSON.stringify({ error: { message: "The server had an error while processing your request (mock).", type: "server_error", param: null, code: null } })}\n\n`

/** One chunk as an event: one `data:` line, or the JSON pretty-printed over several. */
const eventWriter = (options: StreamingOptions) => (value: unknown): string =>
  options.multiLineData === true
    ? JSON.stringify(value, null, 1).split("\n").map((line) => `data: ${line}\n`).join("") + "\n"
    : `data: ${JSON.stringify(value)}\n\n`

/** Sends `completion` as a stream of chunks, then `[DONE]`; or, with `fault`, stops after its `afterChunks` (default 2). */
export const sendStream = (
  state: State,
  entry: JournalEntry,
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  request: ChatSchema.ChatCompletionRequest,
  completion: ChatSchema.ChatCompletion,
  headers: Record<string, string>,
  fault: StreamFault | undefined
): void => {
  const options = state.config.streaming
  state.countStatus(entry, 200)
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", "x-request-id": `req_mock_${entry.seq}`, ...headers })
  const chunks = Content.streamChunks(request, completion, options.chunkChars ?? 8)
  const interval = Duration.toMillis(options.interval ?? 0)
  const event = eventWriter(options)
  const keepAlive = options.keepAlive === true ? ": keep-alive\n\n" : ""
  let i = 0
  const next = (): void => {
    if (res.destroyed) return
    if (fault !== undefined && i === (fault.afterChunks ?? 2)) {
      if (fault.type === "stream_stall") return
      if (fault.type === "stream_disconnect") return void req.socket.destroy()
      res.end(STREAM_ERROR_EVENT)
      return
    }
    if (i >= chunks.length) {
      res.end("data: [DONE]\n\n")
      return
    }
    res.write(keepAlive + event(chunks[i++]))
    if (interval <= 0) return void setImmediate(next)
    // Chunk i is due `i` intervals after the first: a timer that fired late is made up at the next
    // chunk, so the answer keeps the pace asked on average (waiting `interval` after each write
    // made 1 ms about 1.7 ms, as a timer fires up to a millisecond late).
    const wait = firstAt + i * interval - performance.now()
    if (wait <= 0) return void setImmediate(next)
    state.later(wait, next)
  }
  if (keepAlive !== "") res.write(keepAlive)
  const firstAt = performance.now()
  next()
}
