/**
 * The memory store: entries in a `Map` in least-recently-used order (a read moves an entry to the
 * end), evicted from the front while the entries' bytes pass `maxBytes`.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Store } from "../../ResponseCache.js"

const sizeOf = (key: string, text: string): number => Buffer.byteLength(text) + key.length

/** A store of at most `maxBytes` (entry texts and keys); an entry larger than that is not kept. */
export const make = (maxBytes: number): Store & { readonly bytes: () => number } => {
  const entries = new Map<string, string>()
  let bytes = 0
  const drop = (key: string) => {
    const old = entries.get(key)
    if (old === undefined) return
    entries.delete(key)
    bytes -= sizeOf(key, old)
  }
  return {
    location: "memory",
    bytes: () => bytes,
    get: (key) =>
      Effect.sync(() => {
        const text = entries.get(key)
        if (text === undefined) return Option.none()
        entries.delete(key)
        entries.set(key, text)
        return Option.some(text)
      }),
    set: (key, text) =>
      Effect.sync(() => {
        drop(key)
        const size = sizeOf(key, text)
        if (size > maxBytes) return
        entries.set(key, text)
        bytes += size
        for (const oldest of entries.keys()) {
          if (bytes <= maxBytes) break
          drop(oldest)
        }
      }),
    remove: (key) => Effect.sync(() => drop(key))
  }
}
