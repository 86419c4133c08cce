import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as BatchFile from "../src/cli/batchFile.js"
import { ChatError, RetryPolicy } from "../src/index.js"
import { isResendableStatus, isRetryableStatus } from "../src/internal/retryable.js"

const STATUSES = Array.from({ length: 500 }, (_, i) => 100 + i)

const apiError = (status: number, shouldRetry?: boolean) =>
  new ChatError.ApiError({ status, detail: "x", attempts: 1, ...(shouldRetry === undefined ? {} : { shouldRetry }) })

const outputLineWith = (status: number) => ({ id: "batch_req_1", custom_id: "a", response: { status_code: status, request_id: undefined, body: {} }, error: null })

describe("the retryable-status rule", () => {
  it("retries exactly 408, 409, 429 and every 5xx among 100-599; a rerun also resends 401", () => {
    expect(STATUSES.filter(isRetryableStatus)).toEqual([408, 409, 429, ...STATUSES.filter((s) => s >= 500)])
    expect(STATUSES.filter(isResendableStatus)).toEqual([401, 408, 409, 429, ...STATUSES.filter((s) => s >= 500)])
  })

  it("property: RetryPolicy retries an ApiError of status s exactly when the rule says so, for every s in 100-599", () => {
    for (const status of STATUSES) expect([status, RetryPolicy.isRetryable(apiError(status))]).toEqual([status, isRetryableStatus(status)])
  })

  it("property: a rerun keeps an output line of status s as final exactly when the rule does not resend it, for every s in 100-599", () => {
    for (const status of STATUSES) expect([status, BatchFile.isFinal(outputLineWith(status))]).toEqual([status, !isResendableStatus(status)])
  })

  it("property: what the client retries, a rerun sends again (and 401 besides)", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 100, max: 599 }), (status) => {
        expect(isResendableStatus(status)).toBe(isRetryableStatus(status) || status === 401)
        if (RetryPolicy.isRetryable(apiError(status))) expect(BatchFile.isFinal(outputLineWith(status))).toBe(false)
      })
    )
  })

  it("property: the server's x-should-retry overrides the status rule in the client", () => {
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 100, max: 599 }), FastCheck.boolean(), (status, shouldRetry) => {
        expect(RetryPolicy.isRetryable(apiError(status, shouldRetry))).toBe(shouldRetry)
      })
    )
  })
})
