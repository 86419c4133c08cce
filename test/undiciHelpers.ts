/** A dispatcher that records the handler it is given, and a controller that records what the handler asks of it: the test plays the socket's part. */
import type { Dispatcher } from "undici"

/** A controller as undici gives one, recording what the handler asked of it. */
export class Controller {
  aborted = false
  paused = false
  reason: Error | null = null
  readonly calls: Array<string> = []
  /** This controller as undici's type. */
  get as(): Dispatcher.DispatchController {
    return this as unknown as Dispatcher.DispatchController
  }
  abort(reason: Error) {
    this.calls.push("abort")
    this.aborted = true
    this.reason = reason
  }
  pause() {
    this.calls.push("pause")
    this.paused = true
  }
  resume() {
    this.calls.push("resume")
    this.paused = false
  }
}

/** A dispatcher that keeps the handler it is given. */
export const recorder = () => {
  const seen: { handler?: Dispatcher.DispatchHandler } = {}
  const dispatcher = { dispatch: (_options: unknown, handler: Dispatcher.DispatchHandler) => {
    seen.handler = handler
    return true
  } } as unknown as Dispatcher
  return { dispatcher, handler: () => seen.handler! }
}

