/**
 * A cheaper abort signal for undici's `request`.
 * @internal
 */
import type { EventEmitter } from "node:events"

/**
 * A signal that undici's `request` accepts in place of an `AbortSignal`: undici asks only for
 * `aborted`, `reason` and an EventEmitter's `once`/`removeListener` (lib/core/util.js
 * `addAbortListener`). An `AbortController` per attempt builds an `EventTarget`, and undici then
 * registers a listener on it: 2-3% of the client's busy time per request in profiles of
 * bench/throughput. This is one object and one listener slot. HTTP/1.1 only: undici hands an h2
 * request's signal to Node's `http2` (the client's Agent does not enable h2).
 */
export class Abort {
  aborted = false
  /** Left undefined: undici then fails the request with its own `RequestAbortedError`. */
  readonly reason: unknown = undefined
  private listener: (() => void) | undefined = undefined

  /** Registers the listener (undici registers one per request). */
  once(_event: "abort", listener: () => void): this {
    this.listener = listener
    return this
  }

  /** As `once`: a listener runs at most once anyway. */
  on(event: "abort", listener: () => void): this {
    return this.once(event, listener)
  }

  removeListener(_event: "abort", listener: () => void): this {
    if (this.listener === listener) this.listener = undefined
    return this
  }

  /** Aborts: the listener, if any, runs once. Later calls do nothing. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const listener = this.listener
    this.listener = undefined
    listener?.()
  }
}

/** `abort` typed as what undici's options declare (`AbortSignal | EventEmitter`); it reads only the members above. */
export const signalOf = (abort: Abort): EventEmitter => abort as unknown as EventEmitter
