/**
 * Held cache writes (`ResponseCache.hold`): while a fiber runs under a hold, the cache stage does not
 * write what its calls received but hands the hold the write (and, for an answer read from the
 * cache, the removal of its entry); the caller accepts or rejects them once it has checked the answer.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"

/** The writes and removals of the calls made under one hold. */
export interface Hold {
  readonly writes: Array<Effect.Effect<void>>
  readonly removes: Array<Effect.Effect<void>>
}

/** The hold in force for the fiber, if any. */
export const current: FiberRef.FiberRef<Hold | undefined> = globalValue(
  Symbol.for("effect-shepherd/ResponseCache/hold"),
  () => FiberRef.unsafeMake<Hold | undefined>(undefined)
)

/** Runs `effect` under a new hold; its writes and removals are run by `accept` and `reject`. */
export const hold = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const held: Hold = { writes: [], removes: [] }
    return Effect.map(Effect.locally(effect, current, held), (value) => ({
      value,
      accept: Effect.suspend(() => Effect.all(held.writes.splice(0), { discard: true })),
      reject: Effect.suspend(() => {
        held.writes.length = 0
        return Effect.all(held.removes.splice(0), { discard: true })
      })
    }))
  })
