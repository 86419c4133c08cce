import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import { Pricing } from "../src/index.js"

const usage = (prompt: number, completion: number, cached = 0) => ({ prompt_tokens: prompt, completion_tokens: completion, prompt_tokens_details: { cached_tokens: cached } })

describe("Pricing", () => {
  it("the seed's output prices are in the table", () => {
    const out = (m: string) => Pricing.defaultTable[m]!.output
    expect([out("gpt-4.1"), out("claude-sonnet-4.5"), out("gemini-2.5-flash"), out("deepseek-v3.2")]).toEqual([8, 15, 2.5, 0.42])
  })

  it("costs in integer micro-dollars: 1M output tokens of gpt-4.1 are $8", () => {
    expect(Pricing.cost("gpt-4.1", usage(0, 1_000_000))).toEqual(Option.some(8_000_000))
    expect(Pricing.cost("gpt-4.1", usage(1_000_000, 0))).toEqual(Option.some(2_000_000))
    // 1,000 prompt tokens of which 400 cached, 500 completion tokens of gpt-4o-mini
    expect(Pricing.cost("gpt-4o-mini", usage(1000, 500, 400))).toEqual(Option.some(Math.ceil(600 * 0.15) + Math.ceil(400 * 0.075) + Math.ceil(500 * 0.6)))
  })

  it("an unknown model has no cost, never a guess; dated snapshots take their family's price", () => {
    expect(Pricing.cost("my-local-llama", usage(10, 10))).toEqual(Option.none())
    expect(Pricing.priceOf("gpt-4.1-2025-04-14")).toEqual(Option.some(Pricing.defaultTable["gpt-4.1"]))
    expect(Pricing.priceOf("gpt-4.1-mini")).toEqual(Option.some(Pricing.defaultTable["gpt-4.1-mini"]))
    expect(Pricing.priceOf("gpt-4.1-turbo-preview")).toEqual(Option.none())
  })

  it("users extend or override the table, in code or from JSON", () => {
    const table = Pricing.withPrices({ "my-local-llama": { input: 0, output: 0.1, source: "ours", asOf: "2026-11-24" } })
    expect(Pricing.cost("my-local-llama", usage(0, 1_000_000), table)).toEqual(Option.some(100_000))
    const fromJson = Pricing.decodeTable('{"x": {"input": 1, "output": 2, "source": "s", "asOf": "2026-01-01"}}')
    expect(Either.isRight(fromJson)).toBe(true)
    expect(Either.isLeft(Pricing.decodeTable('{"x": {"input": -1, "output": 2, "source": "s", "asOf": "d"}}'))).toBe(true)
  })

  it("property: costs are non-negative integers, and the worst case bounds the actual cost", () => {
    FastCheck.assert(FastCheck.property(
      FastCheck.constantFrom(...Object.keys(Pricing.defaultTable)),
      FastCheck.integer({ min: 0, max: 200_000 }), FastCheck.integer({ min: 0, max: 50_000 }), FastCheck.integer({ min: 0, max: 50_000 }),
      (model, prompt, completion, extra) => {
        const c = Option.getOrThrow(Pricing.cost(model, usage(prompt, completion)))
        expect(Number.isInteger(c)).toBe(true)
        expect(c).toBeGreaterThanOrEqual(0)
        const worst = Option.getOrThrow(Pricing.worstCase(model, prompt, completion + extra))
        expect(worst).toBeGreaterThanOrEqual(c)
      }))
  })
})
