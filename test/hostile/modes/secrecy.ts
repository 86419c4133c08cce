/**
 * Servers that echo the API key back (issue 13 C.10): into every error field, every header they can
 * set, the ids and models of 2xx bodies and stream events; exactly, JSON-escaped (`\u0073…`, which
 * JSON.parse turns back into the key) and percent-encoded (`%73…`).
 */
import type * as Http from "node:http"
import * as Hostile from "../server.js"

/** The key the request carried (`Authorization: Bearer <key>`). */
export const keyOf = (request: Hostile.Received): string => String(request.headers["authorization"] ?? "").replace(/^Bearer /, "")

/** Every character as a JSON `\u00XX` escape (a JSON string that decodes to the key). */
export const jsonEscaped = (key: string): string => [...key].map((c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0")).join("")

/** Every character percent-encoded (`%73%6B…`), as a URL could carry it. */
export const percentEncoded = (key: string): string => [...key].map((c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")).join("")

/** The forms of `key` that must appear nowhere Shepherd writes. */
export const formsOf = (key: string): ReadonlyArray<string> => [key, jsonEscaped(key), percentEncoded(key)]

/** Headers that carry the key: the request id, a custom one, and a percent-encoded one. */
const echoHeaders = (key: string): Record<string, string> => ({
  "x-request-id": key,
  "x-echo": `prefix ${key} suffix`,
  "x-echo-encoded": percentEncoded(key),
  "openai-organization": key
})

/** JSON text of `body` where the placeholders `"@ESCAPED@"` and `"@ENCODED@"` become the key written those ways. */
const withForms = (body: unknown, key: string): string =>
  JSON.stringify(body).replaceAll("@ESCAPED@", jsonEscaped(key)).replaceAll("@ENCODED@", percentEncoded(key))

/** An OpenAI error object whose every field carries the key, in its three forms. */
const echoError = (key: string) => ({
  error: { message: `Incorrect API key provided: ${key}.`, type: "@ESCAPED@", code: key, param: "@ENCODED@" }
})

const send = (res: Http.ServerResponse, status: number, text: string, headers: Record<string, string>, type = "application/json") => {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text), ...headers })
  res.end(text)
}

/**
 * What the request asks for, by a word in its content (chat) or input (embeddings):
 * `fail400`, `fail429`, `fail502html` answer errors that echo the key; anything else a 2xx whose id
 * and model are the key. A streamed request gets a chunk with the key as id and model, then an error
 * event that echoes it.
 */
export const echoKey: Hostile.HttpMode = (request, res) => {
  const key = keyOf(request)
  const headers = echoHeaders(key)
  const body = JSON.parse(request.body || "{}") as { stream?: boolean; input?: unknown; messages?: Array<{ content?: unknown }> }
  const asked = JSON.stringify(body.messages ?? body.input ?? "")
  if (asked.includes("fail400")) return send(res, 400, withForms(echoError(key), key), headers)
  if (asked.includes("fail429")) return send(res, 429, withForms(echoError(key), key), { ...headers, "retry-after-ms": "1" })
  if (asked.includes("fail502html")) return send(res, 502, `<html><body>bad gateway for ${key} (${percentEncoded(key)})</body></html>`, headers, "text/html")
  if (request.path.endsWith("/embeddings")) {
    return send(res, 200, withForms({ object: "list", model: "@ESCAPED@", data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }], usage: { prompt_tokens: 2, total_tokens: 2 } }, key), headers)
  }
  if (body.stream === true) {
    res.writeHead(200, { "content-type": "text/event-stream", ...headers })
    const chunk = { id: key, object: "chat.completion.chunk", created: 1_700_000_000, model: "@ESCAPED@", choices: [{ index: 0, delta: { role: "assistant", content: `echo ${key}` }, finish_reason: null }] }
    res.write(`data: ${withForms(chunk, key)}\n\n`)
    // A moment later, so that the chunk reaches the caller before the error ends the stream.
    setTimeout(() => res.end(`data: ${withForms(echoError(key), key)}\n\n`), 50)
    return
  }
  const completion = { ...Hostile.completion(`you sent ${key}`), id: key, model: "@ESCAPED@", system_fingerprint: "@ENCODED@" }
  return send(res, 200, withForms(completion, key), headers)
}

/** A plain 400 with an OpenAI error object that holds no key: the words a batch output line must carry unchanged. */
export const honestError = {
  message: "The model `no-such-model` does not exist or you do not have access to it.",
  type: "invalid_request_error",
  param: "model",
  code: "model_not_found"
} as const

/** `echoKey`, except that a request mentioning `honest404` gets `honestError` (status 404). */
export const echoKeyOrHonest: Hostile.HttpMode = (request, res, req) => {
  if (request.body.includes("honest404")) return Hostile.json(res, 404, { error: honestError }, { "x-request-id": "req_honest" })
  return echoKey(request, res, req)
}

/** Streams `content` as chat chunks of `pieceChars` characters each, then `[DONE]` (an honest stream, cut finely). */
export const streamInPieces = (content: string, pieceChars: number): Hostile.HttpMode => (_, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" })
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
  let text = chunk({ role: "assistant", content: "" }, null)
  for (let i = 0; i < content.length; i += pieceChars) text += chunk({ content: content.slice(i, i + pieceChars) }, null)
  res.end(text + chunk({}, "stop") + "data: [DONE]\n\n")
}
