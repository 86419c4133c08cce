/**
 * A whole answer read straight from undici's dispatcher: a handler of undici's own callbacks that
 * keeps the body's pieces and hands over the text at its end. `Dispatcher.request` would put a
 * promise, a Node `Readable` and its `text()` consumer between the socket and the answer
 * (bench/throughput).
 * @internal
 */
import { type Dispatcher, errors } from "undici"
import type * as ChatError from "../ChatError.js"
import { announcedLength } from "./transport.js"

/** What reading a whole answer needs of its attempt. */
export interface Reading {
  /** The undici error (or abort) as the attempt reports it: a timeout when its deadline fired. */
  readonly failure: (error: unknown) => ChatError.TransportError | ChatError.TimeoutError
  /** The error for a body past `maxResponseBytes`. */
  readonly tooLarge: () => ChatError.TransportError
  readonly maxResponseBytes: number
  /** The attempt settled (answered, failed or aborted): its deadline is over. */
  readonly done: () => void
}

/** An answer as it arrived: status, headers as undici parsed them, the body's pieces. */
export interface Arrived {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly chunks: ReadonlyArray<Buffer>
  readonly size: number
  /**
   * Set when a body without a length (chunked) broke off before its end: `chunks` is what arrived,
   * which the caller uses only if it decodes to a whole answer.
   */
  readonly cut?: ChatError.TransportError | undefined
}

/** What an attempt fails with. */
export type Failure = ChatError.TransportError | ChatError.TimeoutError

class AnswerHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined = undefined
  private settled = false
  private status = 0
  private headers: Record<string, string | Array<string> | undefined> = {}
  private length: number | undefined = undefined
  private chunks: Array<Buffer> = []
  private size = 0

  constructor(private readonly reading: Reading, private readonly settled_: Settled) {}

  /** Aborts the request (its deadline, an interruption); harmless once it settled. */
  readonly abort = (): void => {
    if (this.settled) return
    // Not yet on a socket: undici aborts it when it gets one (onRequestStart); the attempt fails now.
    if (this.controller === undefined) return this.fail(this.reading.failure(new errors.RequestAbortedError()))
    this.controller.abort(new errors.RequestAbortedError())
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.settled) controller.abort(new errors.RequestAbortedError())
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | Array<string> | undefined>): void {
    // 1xx answers are informational: the real one follows.
    if (status < 200 || this.settled) return
    this.status = status
    this.headers = headers
    this.length = announcedLength(headers)
    // A larger announced length is refused before any of the body is read.
    if (this.length !== undefined && this.length > this.reading.maxResponseBytes) this.refuse(controller)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return
    this.size += chunk.length
    if (this.size > this.reading.maxResponseBytes) return this.refuse(controller)
    this.chunks.push(chunk)
  }

  onResponseEnd(): void {
    // An end without an answer (only 1xx): a transport failure, not an answer with status 0.
    if (this.status === 0) return this.fail(this.reading.failure(new errors.SocketError("the response ended before its status")))
    if (this.settle()) this.settled_.answered({ status: this.status, headers: this.headers, chunks: this.chunks, size: this.size })
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.settled) return
    const mapped = this.reading.failure(error)
    // What arrived may still be the whole answer (a chunked body without its last chunk): the
    // caller decides from its content. A deadline's abort is not such a case.
    if (this.size > 0 && this.length === undefined && mapped._tag === "TransportError") {
      if (this.settle()) this.settled_.answered({ status: this.status, headers: this.headers, chunks: this.chunks, size: this.size, cut: mapped })
      return
    }
    this.fail(mapped)
  }

  private refuse(controller: Dispatcher.DispatchController): void {
    this.chunks = []
    this.fail(this.reading.tooLarge())
    controller.abort(new errors.RequestAbortedError())
  }

  private fail(error: Failure): void {
    if (this.settle()) this.settled_.failed(error)
  }

  /** True the first time: the attempt is over, its deadline released. */
  private settle(): boolean {
    if (this.settled) return false
    this.settled = true
    this.reading.done()
    return true
  }
}

/** Where an attempt's outcome goes: called once, with the answer or the failure. */
export interface Settled {
  readonly answered: (arrived: Arrived) => void
  readonly failed: (error: Failure) => void
}

/**
 * Sends `options` on `dispatcher` and reads the whole answer into `settled`; returns the request's
 * abort (for the attempt's deadline and an interruption). The caller's `Effect.async` resumes from
 * `settled`, so an answer costs no fiber step besides that one.
 */
export const send = (dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, reading: Reading, settled: Settled): () => void => {
  const handler = new AnswerHandler(reading, settled)
  try {
    dispatcher.dispatch(options, handler)
  } catch (error) {
    handler.onResponseError(undefined, error instanceof Error ? error : new Error(String(error)))
  }
  return handler.abort
}
