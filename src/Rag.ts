/**
 * A small retrieval-augmented pipeline on the client: analyse many documents concurrently into a
 * summary and key points (through `Structured.generate`, so "almost JSON" answers are recovered and
 * bad ones re-asked), then answer a question from the documents that match it best.
 *
 * ```ts
 * const analyses = yield* Rag.analyzeDocuments(docs, { model: "gpt-4.1-mini", concurrency: 10 })
 * const { answer, sources } = yield* Rag.answer("How long do refunds take?", docs, { model: "gpt-4.1-mini" })
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ChatClient from "./ChatClient.js"
import type * as ChatError from "./ChatError.js"
import type * as ChatSchema from "./ChatSchema.js"
import type * as Json from "./Json.js"
import * as Pricing from "./Pricing.js"
import * as Structured from "./Structured.js"

/**
 * A document to analyse or to answer from.
 *
 * @since 0.1.0
 * @category models
 */
export interface Document {
  readonly docId: string
  readonly content: string
}

/**
 * What the model is asked to return for each document.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DocumentAnalysis = Schema.Struct({
  summary: Schema.String.annotations({ description: "Two or three sentences on what the document says" }),
  keyPoints: Schema.Array(Schema.String).annotations({ description: "The document's key points, at most five" })
})

/**
 * The analysis of one document. On failure `summary` is empty, `keyPoints` too, and `error` says why.
 *
 * @since 0.1.0
 * @category models
 */
export interface Analysis {
  readonly docId: string
  readonly summary: string
  readonly keyPoints: ReadonlyArray<string>
  readonly error?: ChatError.ChatError | Structured.StructuredOutputError
  /** How the accepted answer's JSON was recovered (`strict`, `fenced`, `extracted`, `repaired`); none on failure. */
  readonly recovery?: Json.Recovery
  /** Requests made for it (re-asks included; 0 when the first request failed before an answer). */
  readonly attempts: number
  /** Tokens over all its requests. */
  readonly usage: { readonly promptTokens: number; readonly completionTokens: number }
  /** Its cost in micro-dollars; none for a model without a known price. */
  readonly costMicroUsd: Option.Option<Pricing.MicroUsd>
}

/**
 * Options of {@link analyze} and {@link analyzeDocuments}.
 *
 * @since 0.1.0
 * @category options
 */
export interface AnalyzeOptions {
  /** The chat model. */
  readonly model: string
  /** Documents analysed at once. @default 8 */
  readonly concurrency?: number | undefined
  /** Longest content sent, in characters; longer documents are cut (and the prompt says so). @default 24000 */
  readonly maxContentChars?: number | undefined
  /** `max_tokens` of each answer. @default 400 */
  readonly maxTokens?: number | undefined
  /** Options of `Structured.generate` (mode, re-asks). @default Structured.defaults */
  readonly structured?: Partial<Structured.Options> | undefined
  /** Prices for the costs. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

const ANALYST = "You analyse documents for a search index. Summarise the document in two or three sentences and list its key points (at most five). " +
  "Use only what the document says."

const analyzeOne = (doc: Document, options: AnalyzeOptions): Effect.Effect<Analysis, never, ChatClient.ChatClient> => {
  const limit = options.maxContentChars ?? 24_000
  const cut = doc.content.length > limit
  const request: ChatSchema.ChatCompletionRequest = {
    model: options.model,
    max_tokens: options.maxTokens ?? 400,
    messages: [
      { role: "system", content: ANALYST },
      { role: "user", content: `Document ${doc.docId}${cut ? ` (the first ${limit} characters)` : ""}:\n\n${cut ? doc.content.slice(0, limit) : doc.content}` }
    ]
  }
  const prices = options.prices ?? Pricing.defaultTable
  return Structured.generate(DocumentAnalysis, request, { name: "document_analysis", ...options.structured }).pipe(
    Effect.match({
      onSuccess: (result): Analysis => ({
        docId: doc.docId,
        summary: result.value.summary,
        keyPoints: result.value.keyPoints,
        recovery: result.recovery,
        attempts: result.attempts,
        usage: { promptTokens: result.usage.prompt_tokens, completionTokens: result.usage.completion_tokens },
        costMicroUsd: Pricing.cost(options.model, result.usage, prices)
      }),
      onFailure: (error): Analysis => {
        // Answers refused by the re-asks were billed; a ChatError means no answer arrived to bill.
        const usage = error._tag === "StructuredOutputError" && error.usage !== undefined ? error.usage : { prompt_tokens: 0, completion_tokens: 0 }
        return {
          docId: doc.docId,
          summary: "",
          keyPoints: [],
          error,
          attempts: "attempts" in error ? error.attempts : 0,
          usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens },
          costMicroUsd: Pricing.cost(options.model, usage, prices)
        }
      }
    })
  )
}

/**
 * Analyses every document, at most `concurrency` at once, emitting each analysis as it completes.
 * A document that fails (after the client's retries and the re-asks) gives an `Analysis` with its
 * `error`; it never fails the others.
 *
 * @since 0.1.0
 * @category analysis
 */
export const analyze = (
  docs: Iterable<Document> | Stream.Stream<Document>,
  options: AnalyzeOptions
): Stream.Stream<Analysis, never, ChatClient.ChatClient> =>
  (Stream.StreamTypeId in (docs as object) ? (docs as Stream.Stream<Document>) : Stream.fromIterable(docs as Iterable<Document>)).pipe(
    Stream.mapEffect((doc) => analyzeOne(doc, options), { concurrency: options.concurrency ?? 8, unordered: true })
  )

/**
 * `analyze`, collected in the documents' order.
 *
 * @since 0.1.0
 * @category analysis
 */
export const analyzeDocuments = (
  docs: Iterable<Document>,
  options: AnalyzeOptions
): Effect.Effect<Array<Analysis>, never, ChatClient.ChatClient> =>
  Effect.forEach(docs, (doc) => analyzeOne(doc, options), { concurrency: options.concurrency ?? 8 })

// ---------------------------------------------------------------------------------------------
// Answering
// ---------------------------------------------------------------------------------------------

const terms = (text: string): Array<string> => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []

/**
 * A document's match with a query.
 *
 * @since 0.1.0
 * @category models
 */
export interface Match {
  readonly docId: string
  /** Okapi BM25 (k1 1.2, b 0.75) of the query's terms in the document; higher is better. */
  readonly score: number
}

/**
 * The `topK` documents that match `query` best by BM25 over their words (no model call), best
 * first; documents sharing no term with the query are left out; ties keep the documents' order.
 *
 * @since 0.1.0
 * @category retrieval
 */
export const rank = (query: string, docs: ReadonlyArray<Document>, topK: number): Array<Match> => {
  const wanted = [...new Set(terms(query))]
  if (wanted.length === 0 || docs.length === 0 || topK <= 0) return []
  const counts = docs.map((doc) => {
    const tf = new Map<string, number>()
    const words = terms(doc.content)
    for (const word of words) tf.set(word, (tf.get(word) ?? 0) + 1)
    return { tf, length: words.length }
  })
  const average = counts.reduce((sum, c) => sum + c.length, 0) / docs.length || 1
  const k1 = 1.2
  const b = 0.75
  const idf = new Map(wanted.map((term) => {
    const n = counts.filter((c) => c.tf.has(term)).length
    return [term, Math.log(1 + (docs.length - n + 0.5) / (n + 0.5))] as const
  }))
  return docs
    .map((doc, i) => {
      const { tf, length } = counts[i]!
      let score = 0
      for (const term of wanted) {
        const f = tf.get(term) ?? 0
        if (f > 0) score += idf.get(term)! * (f * (k1 + 1)) / (f + k1 * (1 - b + (b * length) / average))
      }
      return { docId: doc.docId, score, i }
    })
    .filter((m) => m.score > 0)
    .sort((x, y) => y.score - x.score || x.i - y.i)
    .slice(0, topK)
    .map(({ docId, score }) => ({ docId, score }))
}

/**
 * Options of {@link answer}.
 *
 * @since 0.1.0
 * @category options
 */
export interface AnswerOptions {
  /** The chat model. */
  readonly model: string
  /** Documents put in the context. @default 5 */
  readonly topK?: number | undefined
  /** Longest piece of each document put in the context, in characters. @default 6000 */
  readonly maxCharsPerDocument?: number | undefined
  /** `max_tokens` of the answer. @default 500 */
  readonly maxTokens?: number | undefined
  /** Prices for the cost. @default Pricing.defaultTable */
  readonly prices?: Pricing.PriceTable | undefined
}

/**
 * An answer with where it came from and what it cost.
 *
 * @since 0.1.0
 * @category models
 */
export interface Answer {
  readonly answer: string
  /** The documents given to the model, best match first. */
  readonly sources: ReadonlyArray<Match>
  readonly usage: ChatSchema.CompletionUsage | undefined
  /** Its cost in micro-dollars; none for a model without a known price or an answer without usage. */
  readonly costMicroUsd: Option.Option<Pricing.MicroUsd>
  /** The provider's request id. */
  readonly requestId: string | undefined
}

const ANSWERER = "Answer the question using only the documents below. Cite each document you use as [docId]. " +
  "If the documents do not contain the answer, say so."

/**
 * The messages `answer` sends: the best documents in a system message, then the question.
 *
 * @since 0.1.0
 * @category answering
 */
export const answerMessages = (query: string, docs: ReadonlyArray<Document>, sources: ReadonlyArray<Match>, maxChars: number): Array<ChatSchema.ChatMessage> => {
  const byId = new Map(docs.map((doc) => [doc.docId, doc]))
  const context = sources
    .map((m) => {
      const content = byId.get(m.docId)!.content
      return `[${m.docId}]\n${content.length > maxChars ? content.slice(0, maxChars) + " …" : content}`
    })
    .join("\n\n")
  return [
    { role: "system", content: `${ANSWERER}\n\nDocuments:\n\n${sources.length === 0 ? "(none matched the question)" : context}` },
    { role: "user", content: query }
  ]
}

/**
 * Answers `query` from the `topK` documents that match it best (`rank`): one chat request whose
 * system message holds them, each under its `[docId]`. Fails only with the client's `ChatError`.
 *
 * @since 0.1.0
 * @category answering
 */
export const answer = (
  query: string,
  docs: ReadonlyArray<Document>,
  options: AnswerOptions
): Effect.Effect<Answer, ChatError.ChatError, ChatClient.ChatClient> =>
  Effect.gen(function* () {
    const chat = yield* ChatClient.ChatClient
    const sources = rank(query, docs, options.topK ?? 5)
    const result = yield* chat.createWithMetadata({
      model: options.model,
      max_tokens: options.maxTokens ?? 500,
      messages: answerMessages(query, docs, sources, options.maxCharsPerDocument ?? 6000)
    })
    const usage = result.completion.usage ?? undefined
    return {
      answer: result.completion.choices[0]?.message.content ?? "",
      sources,
      usage,
      costMicroUsd: usage === undefined ? Option.none() : Pricing.cost(options.model, usage, options.prices ?? Pricing.defaultTable),
      requestId: result.requestId
    }
  })
