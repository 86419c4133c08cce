/**
 * The budget kept in Redis (`Budget.makeRedis`): the shared record, its Lua scripts, the local
 * fallback while Redis cannot be reached, and the loss of the record. One mutable `Store` per budget;
 * each operation is a small function over it.
 * @internal
 */
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import type { RedisOptions, Reservation, Service } from "../Budget.js"
import { BudgetExceededError, LimiterUnavailableError } from "../ChatError.js"
import * as Pricing from "../Pricing.js"
import * as Internal from "./budget.js"
import * as Shared from "./redis.js"
import * as Validate from "./validate.js"

/** One budget's connection, scripts and state (this process's view of the shared record). */
interface Store {
  readonly limit: number
  readonly prices: Pricing.PriceTable
  readonly workers: number
  readonly fallback: boolean
  readonly keys: Array<string>
  readonly leaseMillis: number
  readonly connection: Shared.Connection
  readonly scripts: {
    readonly init: ReturnType<typeof Shared.script>
    readonly reserve: ReturnType<typeof Shared.script>
    readonly settle: ReturnType<typeof Shared.script>
    readonly rebuild: ReturnType<typeof Shared.script>
  }
  /** Ids unique to this process: a reservation or settlement whose answer was lost is found by its id. */
  readonly idPrefix: string
  seq: number
  /** The shared totals as last seen. */
  lastSpent: number
  lastReserved: number
  /** This process's own record: what it spent (written or not), holds, and of that has been granted. */
  ownSpent: number
  ownReserved: number
  ownGranted: number
  /** What Redis confirmed it took from this process: the record can hold no less. */
  ownWritten: number
  /** The record's epoch, read (or set) at the first contact. */
  epoch: string | undefined
  /** Set when the record was found lost: the process no longer uses it. */
  lost: LimiterUnavailableError | undefined
  /** Settlements Redis has not taken yet (a cancellation is one of 0). */
  readonly unwritten: Array<{ readonly id: string; readonly actual: number }>
  /** While on local state: the share of what was left, and what this process committed of it. */
  localLimit: number | undefined
  localCommitted: number
  readonly localReservations: WeakSet<Reservation>
  /** Reservations made here and not settled yet (this process's own record holds them). */
  readonly mine: WeakSet<Reservation>
}

const call = <A>(s: Store, run: (redis: Shared.Connection["redis"]) => Promise<A>) => s.connection.call("budget", run)
const newEpoch = () => randomBytes(8).toString("hex")
const nextId = (s: Store) => `${s.idPrefix}:${(++s.seq).toString(36)}`

/** Validates the options and connects; the state starts empty. */
const open = (options: RedisOptions, validateOptions: (options: RedisOptions) => Effect.Effect<void, ConfigError.ConfigError>) =>
  Effect.gen(function* () {
    yield* validateOptions(options)
    if (options.leaseDuration !== undefined) yield* Validate.positiveDuration(["leaseDuration"], options.leaseDuration)
    const { prefix, workers } = yield* Shared.resolve(options)
    const connection = yield* Shared.connect(options, "budget")
    const store: Store = {
      limit: Math.round(options.maxUsd * 1e6),
      prices: options.prices ?? Pricing.defaultTable,
      workers,
      fallback: options.onUnavailable === "fallbackLocal",
      keys: [`${prefix}budget:totals`, `${prefix}budget:leases`, `${prefix}budget:amounts`],
      leaseMillis: Math.max(1, Math.round(Duration.toMillis(options.leaseDuration ?? "15 minutes"))),
      connection,
      scripts: {
        init: Shared.script(Shared.INIT_BUDGET),
        reserve: Shared.script(Shared.RESERVE),
        settle: Shared.script(Shared.SETTLE_BUDGET),
        rebuild: Shared.script(Shared.REBUILD_BUDGET)
      },
      idPrefix: randomBytes(6).toString("hex"),
      seq: 0,
      lastSpent: 0,
      lastReserved: 0,
      ownSpent: 0,
      ownReserved: 0,
      ownGranted: 0,
      ownWritten: 0,
      epoch: undefined,
      lost: undefined,
      unwritten: [],
      localLimit: undefined,
      localCommitted: 0,
      localReservations: new WeakSet<Reservation>(),
      mine: new WeakSet<Reservation>()
    }
    return store
  })

/** The record's epoch, read (or set) at the first contact. */
const ensureEpoch = (s: Store): Effect.Effect<string, LimiterUnavailableError> =>
  Effect.suspend(() =>
    s.epoch !== undefined ? Effect.succeed(s.epoch) : Effect.map(call(s, (redis) => s.scripts.init(redis, s.keys, [newEpoch()]) as Promise<[string, number, number]>), ([e, spent, reserved]) => {
      s.epoch ??= e
      s.lastSpent = spent
      s.lastReserved = reserved
      return s.epoch
    }))

/** Records the loss (once), tells it, and adds this process's commitments to whatever record Redis has now. */
const declareLost = (s: Store, spentSeen: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (s.lost !== undefined) return Effect.void
    const committed = s.ownSpent + s.ownGranted
    const lost = new LimiterUnavailableError({
      store: "budget",
      location: s.connection.location,
      reason: "lost",
      detail: `the shared budget record was lost (FLUSHALL, a restart without persistence, eviction?): Redis holds ${
        Pricing.format(spentSeen)
      } spent where this process alone had written ${Pricing.format(s.ownWritten)}; this process has committed ${Pricing.format(committed)} of ${Pricing.format(s.limit)}`
    })
    s.lost = lost
    // Everything this process committed goes into the rebuilt record at once.
    s.unwritten.length = 0
    return Effect.zipRight(
      Effect.logWarning(
        `shepherd: ${lost.detail}. ` +
          (s.fallback
            ? `Going on with this process's own record (1/${s.workers} of what was left at the last contact).`
            : "Refusing further requests (failClosed).")
      ),
      Effect.ignore(call(s, (redis) => s.scripts.rebuild(redis, s.keys, [newEpoch(), committed])))
    )
  })

/** Writes one settlement; false when the record turned out lost. */
const writeSettlement = (s: Store, id: string, actual: number): Effect.Effect<boolean, LimiterUnavailableError> =>
  Effect.flatMap(ensureEpoch(s), (e) =>
    Effect.flatMap(
      call(s, (redis) => s.scripts.settle(redis, s.keys, [-1, id, actual, s.leaseMillis, e, s.ownWritten]) as Promise<[number, number, number]>),
      ([status, spent, reserved]) => {
        if (status === -1) return Effect.as(declareLost(s, spent), false)
        s.ownWritten += actual
        s.lastSpent = spent
        s.lastReserved = reserved
        return Effect.succeed(true)
      }
    ))

/**
 * Writes the settlements Redis missed; stops at the first failure. Each is taken off the list
 * before it is written (and put back if that fails), so that fibers flushing at the same time
 * never write one twice (and a repeat would count once: settlements are idempotent by id).
 */
const flush = (s: Store): Effect.Effect<void, LimiterUnavailableError> =>
  Effect.suspend(() => {
    const next = s.unwritten.shift()
    if (next === undefined || s.lost !== undefined) return Effect.void
    return Effect.zipRight(
      Effect.tapError(writeSettlement(s, next.id, next.actual), () => Effect.sync(() => { s.unwritten.unshift(next) })),
      flush(s)
    )
  })

type SharedAnswer = Either.Either<Reservation, BudgetExceededError> | "lost"

/** Redis's answer to a reservation script, as a reservation, a refusal or a loss. */
const sharedAnswer = (s: Store, model: string, worst: number, id: string) =>
([status, spent, reserved]: [number, number, number]): Effect.Effect<SharedAnswer, LimiterUnavailableError> => {
  if (status === -1) return Effect.as(declareLost(s, spent), "lost" as const)
  s.lastSpent = spent
  s.lastReserved = reserved
  if (status === 0) {
    return Effect.succeed(Either.left(new BudgetExceededError({ limitMicroUsd: s.limit, committedMicroUsd: spent + reserved, requiredMicroUsd: worst })))
  }
  if (status === -2) return Effect.fail(new LimiterUnavailableError({ store: "budget", location: s.connection.location, detail: `the reservation id ${id} was already used` }))
  return Effect.succeed(Either.right<Reservation>({ model, amount: worst, id }))
}

/** A reservation in the shared record. */
const sharedReserve = (s: Store, model: string, worst: number, id: string): Effect.Effect<SharedAnswer, LimiterUnavailableError> =>
  Effect.suspend(() => {
    if (s.lost !== undefined) return Effect.succeed("lost" as const)
    return Effect.zipRight(
      flush(s),
      Effect.flatMap(ensureEpoch(s), (e) =>
        Effect.flatMap(
          // A reservation whose answer does not come back may still be made: it is cancelled by id.
          Effect.onError(
            call(s, (redis) => s.scripts.reserve(redis, s.keys, [-1, worst, s.limit, s.leaseMillis, id, e, s.ownWritten]) as Promise<[number, number, number]>),
            () => Effect.sync(() => { s.unwritten.push({ id, actual: 0 }) })
          ),
          sharedAnswer(s, model, worst, id)
        ))
    )
  })

/** A reservation in this process's share of what was left. Its own id: the shared attempt's id may have been cancelled. */
const localReserve = (s: Store, model: string, worst: number): Effect.Effect<Reservation, BudgetExceededError> =>
  Effect.suspend(() => {
    if (s.localLimit === undefined) {
      s.localLimit = Math.floor(Math.max(0, s.limit - s.lastSpent - s.lastReserved) / s.workers)
      s.localCommitted = 0
    }
    if (s.localCommitted + worst > s.localLimit) {
      return Effect.fail(new BudgetExceededError({ limitMicroUsd: s.limit, committedMicroUsd: s.limit - s.localLimit + s.localCommitted, requiredMicroUsd: worst }))
    }
    s.localCommitted += worst
    const reservation: Reservation = { model, amount: worst, id: nextId(s) }
    s.localReservations.add(reservation)
    return Effect.succeed(reservation)
  })

/** After a loss: this process's own record, or a refusal. */
const afterLoss = (s: Store, model: string, worst: number): Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError> =>
  s.fallback ? localReserve(s, model, worst) : Effect.suspend(() => Effect.fail(s.lost!))

// A refusal by the budget, or a lost record, is an answer, not a failure of Redis: neither may
// switch to local state as an outage does.
const reserve = (s: Store, guard: Shared.Guard): Service["reserve"] => {
  const worstCase = Internal.worstCaseOf(s.prices, s.limit, () => Math.max(s.lastSpent + s.lastReserved, s.ownSpent + s.ownReserved))
  return (model, promptTokens, maxCompletionTokens) =>
    Effect.flatMap(worstCase(model, promptTokens, maxCompletionTokens), (worst) =>
      Effect.suspend(() => {
        // This process's own record first: it never passes the limit by itself, whatever Redis holds.
        if (s.ownSpent + s.ownReserved + worst > s.limit) {
          return Effect.fail(new BudgetExceededError({ limitMicroUsd: s.limit, committedMicroUsd: s.ownSpent + s.ownReserved, requiredMicroUsd: worst }))
        }
        s.ownReserved += worst
        const decided: Effect.Effect<Reservation, BudgetExceededError | LimiterUnavailableError> = s.lost !== undefined
          ? afterLoss(s, model, worst)
          : Effect.flatMap(
            guard.run(sharedReserve(s, model, worst, nextId(s)), Effect.either(localReserve(s, model, worst))),
            (result) => result === "lost" ? afterLoss(s, model, worst) : result
          )
        return Effect.onExit(decided, (exit) =>
          Effect.sync(() => {
            if (Exit.isSuccess(exit)) {
              s.mine.add(exit.value)
              s.ownGranted += worst
            } else s.ownReserved -= worst
          }))
      }))
}

const settle = (s: Store): Service["settle"] => (reservation, actual) =>
  Effect.suspend(() => {
    const spent = Internal.settledAmount(reservation, actual)
    // Counted once, and only for reservations made here.
    if (s.mine.delete(reservation)) {
      s.ownReserved -= reservation.amount
      s.ownGranted -= reservation.amount
      s.ownSpent += spent
    }
    const id = reservation.id ?? nextId(s)
    if (s.localReservations.has(reservation)) {
      s.localCommitted += spent - reservation.amount
      // Written to Redis when it answers again (or with the next shared call).
      if (spent > 0 && s.lost === undefined) s.unwritten.push({ id, actual: spent })
      return Effect.void
    }
    if (s.lost !== undefined) return Effect.void
    return Effect.catchAll(Effect.asVoid(writeSettlement(s, id, spent)), () => Effect.sync(() => { s.unwritten.push({ id, actual: spent }) }))
  })

const snapshot = (s: Store): Service["snapshot"] =>
  Effect.suspend(() => {
    const own = { limitMicroUsd: s.limit, spentMicroUsd: s.ownSpent, reservedMicroUsd: s.ownReserved }
    if (s.lost !== undefined) return Effect.succeed({ ...own, spentMicroUsd: Math.max(s.lastSpent, s.ownSpent) })
    return Effect.map(
      Effect.either(call(s, (redis) => redis.hmget(s.keys[0]!, "epoch", "spent", "reserved"))),
      (result) => {
        if (result._tag === "Right" && (s.epoch === undefined || result.right[0] === s.epoch)) {
          s.lastSpent = Number(result.right[1] ?? 0)
          s.lastReserved = Number(result.right[2] ?? 0)
        }
        const pending = s.unwritten.reduce((sum, { actual }) => sum + actual, 0)
        return { limitMicroUsd: s.limit, spentMicroUsd: Math.max(s.lastSpent + pending, s.ownSpent), reservedMicroUsd: Math.max(s.lastReserved, s.ownReserved) }
      }
    )
  })

/** `Budget.makeRedis` (see its doc comment); `validateOptions` is `Budget.validateOptions`. */
export const make = (
  options: RedisOptions,
  validateOptions: (options: RedisOptions) => Effect.Effect<void, ConfigError.ConfigError>
): Effect.Effect<Service, LimiterUnavailableError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const s = yield* open(options, validateOptions)
    const guard = yield* Shared.makeGuard(
      s.connection,
      options,
      "budget",
      Effect.zipRight(flush(s), Effect.sync(() => { if (s.lost === undefined) s.localLimit = undefined }))
    )
    // The first contact reads (or sets) the record's epoch; without Redis (fallbackLocal) it waits.
    const first = yield* Effect.either(ensureEpoch(s))
    if (first._tag === "Left" && !s.fallback) return yield* Effect.fail(first.left)
    // What could not be written yet gets one more chance when the scope closes.
    yield* Effect.addFinalizer(() => Effect.ignore(flush(s)))
    return { prices: s.prices, reserve: reserve(s, guard), settle: settle(s), snapshot: snapshot(s) }
  })
