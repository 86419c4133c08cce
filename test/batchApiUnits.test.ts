/** The Batch API's pure parts: which lines are final, retry range keys, the budget ledger. */
import { assert, describe, it } from "@effect/vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as BatchFile from "../src/cli/batchFile.js"
import * as Budget from "../src/internal/batchApi/budget.js"
import * as Http from "../src/internal/batchApi/http.js"
import * as Outcomes from "../src/internal/batchApi/outcomes.js"
import * as Plan from "../src/internal/batchApi/plan.js"
import { isResendableCode } from "../src/internal/retryable.js"
import * as Pricing from "../src/Pricing.js"
import { requests } from "./batchApiHelpers.js"
import { type StubReply, stubClient } from "./helpers.js"

const items = requests(3).map((r, i) => Plan.item(r, i))
const completion = { id: "c", object: "chat.completion", created: 1, model: "gpt-4o-mini", choices: [{ index: 0, message: { role: "assistant", content: "4" }, finish_reason: "stop", logprobs: null }], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } }
const line = (status: number) => ({ id: "batch_req_1", custom_id: "r-0", response: { status_code: status, request_id: "req_1", body: status < 300 ? completion : { error: { message: "m", type: "t", param: null, code: null } } }, error: null })

describe("Batch API output lines", () => {
  it("property: a line of status s gives an outcome exactly when shepherd run would keep its output line as final", () => {
    FastCheck.assert(FastCheck.property(FastCheck.integer({ min: 200, max: 599 }), (status) => {
      const mapped = Outcomes.map(items, `${JSON.stringify(line(status))}\n`, undefined, Pricing.defaultTable, 0)
      assert.strictEqual(mapped.outcomes.length === 1, BatchFile.isFinal(line(status)), String(status))
      assert.strictEqual(mapped.unfinished.includes("r-0"), !BatchFile.isFinal(line(status)))
    }))
  })

  it("a bare error code: server_error, rate_limit_exceeded, batch_expired and the like are unfinished; another code is a final Failure", () => {
    for (const code of ["server_error", "rate_limit_exceeded", "batch_expired", "batch_cancelled", "service_unavailable", "timeout"]) assert.isTrue(isResendableCode(code), code)
    for (const code of ["invalid_request", "invalid_prompt", "context_length_exceeded", "insufficient_quota"]) assert.isFalse(isResendableCode(code), code)
    const text = [
      { custom_id: "r-0", response: null, error: { code: "server_error", message: "x" } },
      { custom_id: "r-1", response: null, error: { code: "invalid_prompt", message: "x" } }
    ].map((l) => JSON.stringify(l)).join("\n")
    const mapped = Outcomes.map(items, undefined, text, Pricing.defaultTable, 0)
    assert.deepStrictEqual(mapped.outcomes.map((o) => `${o.custom_id} ${o._tag}`), ["r-1 Failure"])
    assert.deepStrictEqual(mapped.unfinished, ["r-0", "r-2"])
    // The final Failure's OUT line is final too: else the rerun drops the line while the range holds
    // the id as done, and the id is never sent again.
    assert.isTrue(BatchFile.isFinal(BatchFile.outputLine(mapped.outcomes[0]!, "batch_req_1")))
  })
})

describe("retry ranges", () => {
  it("the same requests retried make a new key each generation, the same one for the same retried range", () => {
    const original = Plan.planned(items, "run")
    const first = Plan.planned(items, "run", original.key)
    const second = Plan.planned(items, "run", first.key)
    assert.strictEqual(new Set([original.key, first.key, second.key]).size, 3)
    assert.strictEqual(Plan.planned(items, "run", original.key).key, first.key)
    assert.strictEqual(first.sha256, original.sha256)
  })
})

describe("the budget ledger", () => {
  const worst = Option.getOrThrow(Budget.worstCase(items, Pricing.defaultTable))

  it.effect("holds while it fits, refuses above, forces an existing batch, settles to the actual cost, gives back a release", () =>
    Effect.gen(function* () {
      const ledger = Budget.make(Math.floor(worst * 1.5), Pricing.defaultTable)
      const hold = yield* ledger.hold(items, false)
      assert.strictEqual(hold.amount, worst)
      const refused = yield* Effect.either(ledger.hold(items, false))
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "BudgetExceededError")
      const forced = yield* ledger.hold(items, true)
      yield* ledger.release(forced)
      yield* ledger.settle(hold, [])
      // Nothing was spent: the whole budget is free again.
      yield* ledger.release(yield* ledger.hold(items, false))
      const unpriced = yield* Effect.either(Budget.make(1e9, Pricing.defaultTable).hold(requests(1, "no-such-model").map((r, i) => Plan.item(r, i)), false))
      assert.isTrue(Either.isLeft(unpriced) && unpriced.left.detail !== undefined)
    }))
})

describe("a provider's answers are read up to a bound", () => {
  const settings = { baseUrl: "http://stub.test/v1", apiKey: Redacted.make("sk-test"), headers: {}, maxRetries: 3, initialDelayMillis: 1, maxRetryAfterMillis: 1_000, timeoutMillis: 60_000 }
  const providerOver = (reply: StubReply) =>
    Effect.gen(function* () {
      const stub = stubClient([reply])
      const client = yield* Effect.provide(HttpClient.HttpClient, stub.layer)
      return { provider: Http.make(client, settings), count: stub.count }
    })

  it.effect("a file content announced past 400 MiB fails at once as response_too_large, not retried and not read", () =>
    Effect.gen(function* () {
      const { provider, count } = yield* providerOver({ status: 200, headers: { "content-length": String(2 * 1024 * 1024 * 1024) }, body: "{}" })
      const error = yield* Effect.flip(provider.content("file-1"))
      assert.strictEqual(error._tag === "ProviderError" ? error.code : error._tag, "response_too_large")
      assert.strictEqual(count(), 1)
    }))

  it.effect("a batch object answered with more than 16 MiB (no length announced) fails as response_too_large", () =>
    Effect.gen(function* () {
      const piece = "x".repeat(1024 * 1024)
      const { provider } = yield* providerOver({ status: 200, body: Array.from({ length: 17 }, () => piece) })
      const error = yield* Effect.flip(provider.retrieve("batch_1"))
      assert.strictEqual(error._tag === "ProviderError" ? error.code : error._tag, "response_too_large")
    }))
})
