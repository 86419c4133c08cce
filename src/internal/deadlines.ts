/**
 * Per-attempt deadlines without a fiber per attempt.
 *
 * `Effect.timeoutFail` races two forked fibers for every call; on the request path that cost 80 to
 * 280 µs of CPU per request (bench/throughput at concurrency 200), more than the HTTP call itself.
 * Here one manager fiber per client sleeps (with `Clock`, so `TestClock` drives it) until the earliest
 * deadline; an attempt only links a node into a list sorted by deadline and unlinks it when done.
 * When a deadline passes, the manager closes the attempt's `Scope`, which aborts the HTTP request
 * bound to it (`HttpClient.withScope`); the attempt then sees `expired` and reports a timeout.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Scope from "effect/Scope"

/** What an attempt can ask of its deadline. */
export interface Deadline {
  /** True once the deadline passed and the scope was closed by the manager. */
  readonly expired: boolean
}

class Node implements Deadline {
  prev: Node | undefined = undefined
  next: Node | undefined = undefined
  expired = false
  linked = false
  constructor(readonly at: number, readonly scope: Scope.CloseableScope) {}
}

export interface Deadlines {
  /**
   * Runs `use` with a fresh scope that is closed when `use` fails or is interrupted or, if `millis`
   * pass first, by the manager (then `deadline.expired` is true). Whatever `use` binds to the scope is
   * aborted with it. After a success the scope is dropped unclosed: nothing is left to abort.
   */
  readonly run: <A, E, R>(
    millis: number,
    use: (scope: Scope.Scope, deadline: Deadline) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
}

/** Starts the manager fiber in the current scope. */
export const make: Effect.Effect<Deadlines, never, Scope.Scope> = Effect.gen(function* () {
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
        yield* Scope.close(node.scope, Exit.void)
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

  const run: Deadlines["run"] = (millis, use) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.acquireUseRelease(
        Scope.make(),
        (scope) => {
          const node = new Node(now + millis, scope)
          link(node)
          return Effect.ensuring(use(scope, node), Effect.sync(() => unlink(node)))
        },
        // After a success nothing is left to abort: skip the close, whose AbortController.abort()
        // builds a DOMException with a stack trace (about 3% of client CPU in bench/throughput).
        (scope, exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit))
      )
    )

  return { run }
})
