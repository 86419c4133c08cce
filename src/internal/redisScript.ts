/**
 * Running Lua on Redis: the scripts' shared prelude (the server's clock) and a runner that sends a
 * script by its SHA-1 and loads it where the server does not know it yet.
 * @internal
 */
import type { Redis } from "ioredis"
import { createHash } from "node:crypto"

/**
 * Lua prelude: `now`, the current time on the Redis server in ms, unless the caller passes one in
 * `ARGV[1]` (tests do; -1 asks for the server's).
 *
 * @since 0.2.0
 * @category scripts
 */
export const SERVER_NOW = `
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

/**
 * Runs a script by its SHA-1, loading it on a server that does not know it (NOSCRIPT).
 *
 * @since 0.1.0
 * @category scripts
 */
export const script = (source: string) => {
  const sha = createHash("sha1").update(source).digest("hex")
  return (redis: Redis, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>): Promise<unknown> =>
    redis.evalsha(sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith("NOSCRIPT")) return redis.eval(source, keys.length, ...keys, ...args)
      throw error
    })
}
