/**
 * A real `redis-server` for tests, started on a free loopback port with no persistence, stopped with
 * the scope. `.ci/run` installs Debian's redis-server; when the binary is missing the suites that
 * need it fail with a clear message in CI (CI or SHEPHERD_REQUIRE_REDIS set) and are skipped with a
 * loud notice elsewhere.
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"

const candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"]

/** The redis-server binary, or undefined. */
export const redisBinary: string | undefined = (() => {
  for (const dir of (process.env["PATH"] ?? "").split(Path.delimiter)) {
    const file = Path.join(dir, "redis-server")
    if (dir !== "" && Fs.existsSync(file)) return file
  }
  return candidates.find((file) => Fs.existsSync(file))
})()

const required = process.env["CI"] !== undefined || process.env["SHEPHERD_REQUIRE_REDIS"] !== undefined

/**
 * Whether the Redis suites run. Missing binary: throws in CI (the suite fails with the reason), else
 * prints a notice and returns false (the caller skips).
 */
export const redisAvailable = (suite: string): boolean => {
  if (redisBinary !== undefined) return true
  const message = `redis-server was not found on PATH: the ${suite} tests need it (Debian: apt-get install -y redis-server; .ci/run installs it).`
  if (required) throw new Error(message)
  console.warn(`\n${"!".repeat(100)}\n!! SKIPPED: ${message}\n${"!".repeat(100)}\n`)
  return false
}

/** A free loopback port (the OS picks it; a small race with other processes is accepted). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export interface RedisServer {
  /** With the password when the server has one (`redis://:password@127.0.0.1:port`). */
  readonly url: string
  readonly port: number
  /** Kills the server at once (SIGKILL), as a crash would. */
  readonly kill: () => Promise<void>
  /** Starts it again on the same port (empty: no persistence). */
  readonly restart: () => Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open, commands wait unanswered, data is kept. */
  readonly stall: () => void
  /** Ends a `stall` (SIGCONT): the commands sent meanwhile are run. */
  readonly resume: () => void
}

/** How to start the server. */
export interface RedisServerOptions {
  /** `--requirepass`: clients must give this password. @default none */
  readonly password?: string | undefined
}

const waitReady = (port: number, child: ChildProcess.ChildProcess, password: string | undefined): Promise<void> =>
  new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`redis-server exited with code ${child.exitCode}`))
      const socket = Net.connect(port, "127.0.0.1")
      socket.once("connect", () => {
        socket.write(password === undefined ? "PING\r\n" : `AUTH ${password}\r\n`)
        socket.once("data", () => {
          socket.destroy()
          resolve()
        })
      })
      socket.once("error", () => {
        socket.destroy()
        if (Date.now() > deadline) reject(new Error(`redis-server did not answer on port ${port} within 10 s`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })

const spawn = async (port: number, password: string | undefined): Promise<ChildProcess.ChildProcess> => {
  const auth = password === undefined ? [] : ["--requirepass", password]
  const child = ChildProcess.spawn(redisBinary!, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning", ...auth], {
    stdio: ["ignore", "ignore", "inherit"]
  })
  await waitReady(port, child, password)
  return child
}

const stop = (child: ChildProcess.ChildProcess, signal: NodeJS.Signals): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill(signal)
  })

/** Starts redis-server for the scope, with `options`. */
export const startRedisWith = (options: RedisServerOptions): Effect.Effect<RedisServer, never, import("effect/Scope").Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const port = await freePort()
      let child = await spawn(port, options.password)
      return {
        child: () => child,
        server: {
          url: options.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`,
          port,
          kill: () => stop(child, "SIGKILL"),
          restart: async () => {
            child = await spawn(port, options.password)
          },
          stall: () => { child.kill("SIGSTOP") },
          resume: () => { child.kill("SIGCONT") }
        } satisfies RedisServer
      }
    }),
    // A stalled server would not end on SIGTERM.
    ({ child }) =>
      Effect.promise(() => {
        const c = child()
        if (c.exitCode === null && c.signalCode === null) c.kill("SIGCONT")
        return stop(c, "SIGTERM")
      })
  ).pipe(Effect.map(({ server }) => server))

/** Starts redis-server for the scope (no password). */
export const startRedis: Effect.Effect<RedisServer, never, import("effect/Scope").Scope> = startRedisWith({})

/** Runs `f` with a connection of its own to the Redis at `url` (to look at what the stores wrote). */
export const admin = <A>(url: string, f: (client: Redis) => Promise<A>): Effect.Effect<A> =>
  Effect.promise(async () => {
    const client = new Redis(url)
    try {
      return await f(client)
    } finally {
      client.disconnect()
    }
  })
