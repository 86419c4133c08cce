/**
 * The file store: one file per entry, `<dir>/<first 2 hex digits>/<key>`. An entry is written to a
 * temporary file beside it, then renamed over it: a reader (of this process or another) sees the
 * old entry or the new one, never half of one, and a crash leaves at most a temporary file (its name
 * starts with a dot). Several processes may write at once; the last rename wins, whole.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { ResponseCacheError, type Store } from "../../ResponseCache.js"

const HEX_KEY = /^[0-9a-f]{64}$/

const isNotFound = (e: unknown): boolean => typeof e === "object" && e !== null && (e as { code?: unknown }).code === "ENOENT"

const detailOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Opens (creates) `dir` and gives the store over it. */
export const make = (dir: string): Effect.Effect<Store, ResponseCacheError> =>
  Effect.gen(function* () {
    const root = Path.resolve(dir)
    const fail = (operation: ResponseCacheError["operation"]) => (e: unknown) => new ResponseCacheError({ operation, location: root, detail: detailOf(e) })
    yield* Effect.tryPromise({ try: () => Fs.mkdir(root, { recursive: true }), catch: fail("open") })
    const made = new Set<string>()
    const pathOf = (key: string) => {
      // Keys are hex digests (internal/cache/key.ts); anything else would be a bug, never a path.
      if (!HEX_KEY.test(key)) throw new Error(`not a cache key: ${JSON.stringify(key.slice(0, 80))}`)
      return Path.join(root, key.slice(0, 2), key)
    }
    const store: Store = {
      location: root,
      get: (key) =>
        Effect.tryPromise({
          try: () => Fs.readFile(pathOf(key), "utf8").then(Option.some, (e) => (isNotFound(e) ? Option.none() : Promise.reject(e))),
          catch: fail("get")
        }),
      set: (key, text) =>
        Effect.tryPromise({
          try: async () => {
            const path = pathOf(key)
            const sub = Path.dirname(path)
            if (!made.has(sub)) {
              await Fs.mkdir(sub, { recursive: true })
              made.add(sub)
            }
            const temporary = Path.join(sub, `.${key.slice(0, 16)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`)
            try {
              await Fs.writeFile(temporary, text, { encoding: "utf8", flag: "wx" })
              await Fs.rename(temporary, path)
            } catch (e) {
              await Fs.rm(temporary, { force: true })
              throw e
            }
          },
          catch: fail("set")
        }),
      remove: (key) => Effect.tryPromise({ try: () => Fs.rm(pathOf(key), { force: true }), catch: fail("remove") })
    }
    return store
  })
