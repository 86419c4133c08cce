/**
 * Per-attempt deadlines without a fiber per attempt.
 *
 * `Effect.timeoutFail` races two forked fibers for every call; on the request path that cost 80 to
 * 280 µs of CPU per request (bench/throughput at concurrency 200), more than the HTTP call itself.
 * Here one manager fiber per client sleeps (with `Clock`, so `TestClock` drives it) until the earliest
 * deadline; an attempt only links a node into a list sorted by deadline and unlinks it when done.
 * When a deadline passes, the manager marks the node expired and calls its `onExpire` (which aborts
 * the request); the attempt then sees `expired` and reports a timeout.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"

/** A registered deadline. */
export interface Deadline {
  /** True once the deadline passed (and `onExpire` was called). */
  readonly expired: boolean
}

class Node implements Deadline {
  prev: Node | undefined = undefined
  next: Node | undefined = undefined
  expired = false
  linked = false
  constructor(readonly at: number, readonly onExpire: () => void) {}
}

/** A client's deadlines: one manager fiber sleeping on the `Clock` until the earliest; attempts register and cancel theirs. */
export interface Deadlines {
  /** Calls `onExpire` once `millis` have passed (on the client's `Clock`), unless `cancel`led first. */
  readonly register: (millis: number, onExpire: () => void) => Deadline
  /** Forgets a deadline; harmless when it already expired or was cancelled. */
  readonly cancel: (deadline: Deadline) => void
  /** The time on the client's `Clock`, in ms. */
  readonly now: () => number
}

/** Starts the manager fiber in the current scope. */
export const make: Effect.Effect<Deadlines, never, Scope.Scope> = Effect.gen(function* () {
  const clock = yield* Effect.clock
  let head: Node | undefined
  let tail: Node | undefined
  /** When the manager will next look; +Infinity while it waits for work. */
  let sleepingUntil = Number.POSITIVE_INFINITY
  let wake = Deferred.unsafeMake<void>(FiberId.none)

  const link = (node: Node) => {
    // Deadlines mostly arrive in order (one timeout per client), so walk from the tail.
    let after = tail
    while (after !== undefined && after.at > node.at) after = after.prev
    node.prev = after
    node.next = after === undefined ? head : after.next
    if (node.next === undefined) tail = node
    else node.next.prev = node
    if (after === undefined) head = node
    else after.next = node
    node.linked = true
    if (node.at < sleepingUntil) Deferred.unsafeDone(wake, Exit.void)
  }

  const unlink = (node: Node) => {
    if (!node.linked) return
    node.linked = false
    if (node.prev === undefined) head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) tail = node.prev
    else node.next.prev = node.prev
    node.prev = node.next = undefined
  }

  const manager = Effect.gen(function* () {
    while (true) {
      const now = yield* Clock.currentTimeMillis
      while (head !== undefined && head.at <= now) {
        const node = head
        unlink(node)
        node.expired = true
        node.onExpire()
      }
      wake = Deferred.unsafeMake<void>(FiberId.none)
      if (head === undefined) {
        sleepingUntil = Number.POSITIVE_INFINITY
        yield* Deferred.await(wake)
      } else {
        sleepingUntil = head.at
        yield* Effect.raceFirst(Clock.sleep(head.at - now), Deferred.await(wake))
      }
    }
  })
  yield* Effect.forkScoped(Effect.interruptible(manager))

  return {
    register: (millis, onExpire) => {
      const node = new Node(clock.unsafeCurrentTimeMillis() + millis, onExpire)
      link(node)
      return node
    },
    cancel: (deadline) => unlink(deadline as Node),
    now: () => clock.unsafeCurrentTimeMillis()
  }
})
