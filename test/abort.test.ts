/** internal/abort: undici's request honours the cheap signal before, during and after a request. */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Agent } from "undici"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Abort, signalOf } from "../src/internal/abort.js"

let server: Server
let origin = ""
const agent = new Agent()

beforeAll(async () => {
  // "/slow" never answers; anything else answers at once.
  server = createServer((req, res) => {
    if (req.url !== "/slow") res.end("ok")
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await agent.destroy()
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

describe("Abort", () => {
  it("aborts a request waiting for its answer", async () => {
    const abort = new Abort()
    const pending = agent.request({ origin, path: "/slow", method: "GET", signal: signalOf(abort) })
    setTimeout(() => abort.abort(), 20)
    await expect(pending).rejects.toMatchObject({ name: "AbortError" })
  })

  it("refuses a request whose signal was already aborted", async () => {
    const abort = new Abort()
    abort.abort()
    await expect(agent.request({ origin, path: "/", method: "GET", signal: signalOf(abort) })).rejects.toMatchObject({ name: "AbortError" })
  })

  it("drops undici's listener once the answer is read, so a later abort does nothing", async () => {
    const abort = new Abort()
    const response = await agent.request({ origin, path: "/", method: "GET", signal: signalOf(abort) })
    expect(await response.body.text()).toBe("ok")
    await new Promise((resolve) => setImmediate(resolve)) // undici removes it when the body closes
    expect((abort as unknown as { listener: unknown }).listener).toBeUndefined()
    abort.abort()
    expect(abort.aborted).toBe(true)
  })

  it("runs its listener once, and not at all once removed", () => {
    const abort = new Abort()
    let calls = 0
    const listener = () => { calls++ }
    abort.once("abort", listener)
    abort.abort()
    abort.abort()
    expect(calls).toBe(1)
    const other = new Abort()
    other.on("abort", listener)
    other.removeListener("abort", listener)
    other.abort()
    expect(calls).toBe(1)
  })
})
