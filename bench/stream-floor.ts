/**
 * bench/stream-floor: what an Effect `Stream` costs per element before any work is done on it, next
 * to async generators (the official SDK's way), with one async boundary per element as a streamed
 * answer has (each element arrives on its own `setImmediate`). No HTTP, no parsing: the floor under
 * bench/streaming's CPU per chunk.
 *
 *   npm run build && node dist/bench/stream-floor.js [--streams 2000] [--per 54] [--concurrency 50] [--rounds 3]
 *
 * Prints the client CPU per element of each variant (median of the rounds, each after a warm-up run).
 * With `--per 1` the figure is what a stream of one element costs in all: the fixed cost of a run.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { flags, median } from "./lib.js"

const args = flags(process.argv.slice(2))
const streams = Number(args.get("streams") ?? 2000)
const per = Number(args.get("per") ?? 54)
const concurrency = Number(args.get("concurrency") ?? 50)
const rounds = Number(args.get("rounds") ?? 3)

interface Item {
  readonly i: number
}
/** An element after an async boundary, as the next piece of a body arrives. */
const later = <A>(value: A): Effect.Effect<A> => Effect.async<A>((resume) => { setImmediate(() => resume(Effect.succeed(value))) })

/** A channel writing one chunk per read, as ChatClient.stream is built (internal/chatStream.ts). */
const channelStream = (): Stream.Stream<Item> => {
  let i = 0
  const loop: Channel.Channel<Chunk.Chunk<Item>, unknown, never, unknown, void, unknown> = Channel.flatMap(
    Channel.fromEffect(Effect.suspend(() => (i++ < per ? later(Chunk.of({ i })) : Effect.succeed(undefined)))),
    (chunk) => (chunk === undefined ? Channel.void : Channel.zipRight(Channel.write(chunk), loop))
  )
  return Stream.fromChannel(loop)
}
const repeatStream = (): Stream.Stream<Item> => {
  let i = 0
  return Stream.repeatEffectChunkOption(Effect.suspend(() => (i++ < per ? later(Chunk.of({ i })) : Effect.fail(Option.none()))))
}
async function* generator(): AsyncGenerator<Item> {
  for (let i = 0; i < per; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    yield { i }
  }
}
/** The SDK's stream is a generator over a generator over the body's pieces. */
async function* wrapped<A>(inner: AsyncGenerator<A>): AsyncGenerator<A> {
  for await (const x of inner) yield x
}

const viaEffect = (make: () => Stream.Stream<Item>) => () =>
  Effect.runPromise(Effect.forEach(Array.from({ length: streams }), () => Stream.runForEach(make(), () => Effect.void), { concurrency, discard: true }))
const viaGenerators = async () => {
  let next = 0
  const worker = async () => {
    while (next++ < streams) for await (const _ of wrapped(wrapped(generator()))) { /* consume */ }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/** The channel stream read with `Stream.toPull` in a loop: no `Stream.run` (no forked fiber, no sink pipes). */
const viaPull = (make: () => Stream.Stream<Item>) => () =>
  Effect.runPromise(Effect.forEach(Array.from({ length: streams }), () =>
    Effect.scoped(Effect.flatMap(Stream.toPull(make()), (pull) => {
      const loop: Effect.Effect<void> = Effect.matchEffect(pull, { onFailure: () => Effect.void, onSuccess: () => loop })
      return loop
    })), { concurrency, discard: true }))

/** The same elements and async boundaries without a Stream: a loop of effects. */
const viaEffectLoop = () => {
  const one = (): Effect.Effect<void> => {
    let i = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => (i++ < per ? Effect.flatMap(later({ i }), () => loop) : Effect.void))
    return loop
  }
  return Effect.runPromise(Effect.forEach(Array.from({ length: streams }), one, { concurrency, discard: true }))
}

const variants: ReadonlyArray<readonly [string, () => Promise<void>]> = [
  ["Effect, no Stream: a loop over the same async boundaries (streamForEach's shape)", viaEffectLoop],
  ["Effect Stream: a channel, one chunk per read (ChatClient.stream's shape), Stream.runForEach", viaEffect(channelStream)],
  ["Effect Stream: repeatEffectChunkOption", viaEffect(repeatStream)],
  ["Effect Stream: the channel read with Stream.toPull, no Stream.run", viaPull(channelStream)],
  ["async generators, three deep (the SDK's shape)", viaGenerators]
]

const cpuPerElement = async (run: () => Promise<void>): Promise<number> => {
  await run() // warm-up
  const cpu = process.cpuUsage()
  await run()
  const used = process.cpuUsage(cpu)
  return (used.user + used.system) / (streams * per)
}

const results = new Map<string, Array<number>>()
for (let round = 0; round < rounds; round++) {
  for (const [name, run] of variants) results.set(name, [...(results.get(name) ?? []), await cpuPerElement(run)])
}
console.log(`bench/stream-floor: ${streams} streams of ${per} elements, ${concurrency} at once, an async boundary per element; ${rounds} round(s), node ${process.version}\n`)
console.log("| variant | CPU us/element |")
console.log("|---|---:|")
for (const [name] of variants) console.log(`| ${name} | ${median(results.get(name)!).toFixed(2)} |`)
