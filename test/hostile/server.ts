/**
 * A server that misbehaves on purpose, for the hostile-server suite (test/hostile/*.test.ts).
 *
 * Plain `node:http` (or `node:net` for byte-level faults): one *mode* per misbehaviour. A mode is a
 * function that answers one request however it likes; modes live in test/hostile/modes/*.ts, one
 * file per area, each export named after the misbehaviour it plays. The server records every request
 * (method, path, headers, body) so a test can count what reached it.
 *
 * ```ts
 * const server = yield* Hostile.serve(Modes.retryAfterForever)
 * const client = ChatClient.layer({ baseUrl: server.baseUrl, apiKey: Redacted.make(KEY) })
 * ...
 * assert.strictEqual(server.requests.length, 1)
 * ```
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fixture from "../helpers.js"
import * as Http from "node:http"
import * as Net from "node:net"

/** A request as it reached the server. */
export interface Received {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | Array<string> | undefined>>
  readonly body: string
  /** 0 for the first request the server saw. */
  readonly index: number
}

/** Answers one HTTP request. `request.body` is already read. May write anything, slowly, or never. */
export type HttpMode = (request: Received, res: Http.ServerResponse, req: Http.IncomingMessage) => void | Promise<void>

/**
 * Answers one TCP connection at the byte level (for faults `node:http` will not produce: a reset
 * after a whole body, a half-written status line). `head` is the request as far as it was read.
 */
export interface RawMode {
  readonly raw: (socket: Net.Socket, request: Received) => void
}

export type Mode = HttpMode | RawMode

export interface Hostile {
  /** `http://127.0.0.1:<port>/v1` */
  readonly baseUrl: string
  readonly port: number
  /** Every request that reached the server, in arrival order. */
  readonly requests: Array<Received>
  /** Open connections right now. */
  readonly connections: () => number
}

const readBody = (req: Http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    req.on("data", (b: Buffer) => parts.push(b))
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
    req.on("error", reject)
  })

/** Reads one request off a raw socket: the head and a Content-Length body. */
const readRawRequest = (socket: Net.Socket, index: number): Promise<Received> =>
  new Promise((resolve) => {
    let buffer = Buffer.alloc(0)
    const onData = (b: Buffer) => {
      buffer = Buffer.concat([buffer, b])
      const end = buffer.indexOf("\r\n\r\n")
      if (end < 0) return
      const head = buffer.subarray(0, end).toString("latin1").split("\r\n")
      const [method = "", path = ""] = (head[0] ?? "").split(" ")
      const headers: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const i = line.indexOf(":")
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
      }
      const length = Number(headers["content-length"] ?? "0")
      if (buffer.length - end - 4 < length) return
      socket.off("data", onData)
      resolve({ method, path, headers, body: buffer.subarray(end + 4, end + 4 + length).toString("utf8"), index })
    }
    socket.on("data", onData)
  })

/** Starts a hostile server on a free loopback port for the scope's lifetime. */
export const serve = (mode: Mode): Effect.Effect<Hostile, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly hostile: Hostile; readonly close: () => Promise<void> }>((resume) => {
      const requests: Array<Received> = []
      const sockets = new Set<Net.Socket>()
      const track = (socket: Net.Socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
      }
      const server: Net.Server = "raw" in mode
        ? Net.createServer((socket) => {
          track(socket)
          void readRawRequest(socket, requests.length).then((request) => {
            const received = { ...request, index: requests.length }
            requests.push(received)
            mode.raw(socket, received)
          })
        })
        : Http.createServer((req, res) => {
          void readBody(req).then((body) => {
            const received: Received = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body, index: requests.length }
            requests.push(received)
            res.on("error", () => {})
            return mode(received, res, req)
          }).catch(() => res.destroy())
        })
      if (!("raw" in mode)) server.on("connection", track)
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as Net.AddressInfo).port
        resume(Effect.succeed({
          hostile: { baseUrl: `http://127.0.0.1:${port}/v1`, port, requests, connections: () => sockets.size },
          close: () =>
            new Promise<void>((done) => {
              for (const socket of sockets) socket.destroy()
              server.close(() => done())
            })
        }))
      })
    }),
    ({ close }) => Effect.promise(close)
  ).pipe(Effect.map(({ hostile }) => hostile))

/** A valid chat completion body for `model` (what an honest server would say): test/helpers.ts's fixture. */
export const completion = (content = "ok", model = "gpt-4.1-mini", usage = { prompt_tokens: 10, completion_tokens: 5 }) =>
  Fixture.completion({ content, model, usage, id: "chatcmpl-hostile", created: 1_700_000_000 })

/** Writes `body` as JSON with `status` and extra headers. */
export const json = (res: Http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers })
  res.end(text)
}

/** An OpenAI-style error body. */
export const errorBody = (message: string, type = "invalid_request_error", code: string | null = null, param: string | null = null) => ({
  error: { message, type, code, param }
})
