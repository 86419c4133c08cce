/** The mock server's units: its state (script, random faults, reset) and its fault checks. */
import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { MockServer } from "../src/testing/index.js"
import * as Faults from "../src/testing/internal/faults.js"
import { State } from "../src/testing/internal/state.js"
import { isStreamFault } from "../src/testing/internal/streamWriter.js"

const config = (overrides: Partial<MockServer.Options> = {}): MockServer.Options => ({ ...MockServer.defaults, ...overrides })

describe("mock server state", () => {
  it("answers the script in order, then random faults at faultRate", () => {
    const state = new State(config({ script: [{ type: "hang" }, "ok"], faultRate: 1, faults: [{ type: "bad_request" }] }))
    expect(state.nextFault()).toEqual({ type: "hang" })
    expect(state.nextFault()).toBeUndefined()
    expect(state.nextFault()).toEqual({ type: "bad_request" })
    expect(new State(config()).nextFault()).toBeUndefined()
  })

  it("the same seed draws the same faults", () => {
    const faults: ReadonlyArray<MockServer.Fault> = [{ type: "bad_request" }, { type: "hang" }, { type: "reset" }]
    const draws = () => {
      const state = new State(config({ seed: 7, faultRate: 0.5, faults }))
      return Array.from({ length: 50 }, () => state.nextFault()?.type)
    }
    expect(draws()).toEqual(draws())
    expect(new Set(draws()).size).toBe(4)
  })

  it("reset clears the journal and the counters, not the script", () => {
    const state = new State(config({ script: [{ type: "hang" }] }))
    state.stats.requests = 3
    state.stats.byStatus["200"] = 3
    state.journal.push({ seq: 1, method: "POST", path: "/v1/x", headers: {}, body: undefined, receivedAtMillis: 0, status: 200, fault: undefined, hungUp: false })
    state.reset()
    expect(state.stats).toEqual({ requests: 0, byStatus: {}, faults: {}, hungUp: 0, rateLimited: 0 })
    expect(state.journal).toEqual([])
    expect(state.nextFault()).toEqual({ type: "hang" })
  })
})

describe("mock server faults", () => {
  it("every fault type is checked as valid, and the streaming ones are told apart", () => {
    for (const type of MockServer.FAULT_TYPES) {
      expect(Either.isRight(Faults.checkFault(["faults", "0"], { type }))).toBe(true)
      expect(isStreamFault({ type } as MockServer.Fault)).toBe(type.startsWith("stream_"))
    }
  })

  it("a bad fault names its path", () => {
    const unknown = Faults.checkFault(["script", "2"], { type: "explode" })
    expect(Either.isLeft(unknown) && "path" in unknown.left ? unknown.left.path : undefined).toEqual(["script", "2", "type"])
    const status = Faults.checkFault(["faults", "0"], { type: "server_error", status: 504 })
    expect(Either.isLeft(status) && "path" in status.left ? status.left.path : undefined).toEqual(["faults", "0", "status"])
  })
})
