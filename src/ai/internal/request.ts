/**
 * The chat-completions request for @effect/ai's provider options: the prompt's messages, the
 * toolkit's tools as function tools with `tool_choice`, and `response_format` for structured output:
 * `json_schema` with `strict: true` when the JSON Schema meets strict mode's rules, else
 * `json_object` with the JSON Schema in a system message.
 * @internal
 */
import type * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import * as Tool from "@effect/ai/Tool"
import * as Either from "effect/Either"
import type * as ChatSchema from "../../ChatSchema.js"
import { malformedInput, toMessages } from "./prompt.js"

type JsonNode = Readonly<Record<string, unknown>>

const isNode = (u: unknown): u is JsonNode => typeof u === "object" && u !== null && !Array.isArray(u)

/** Keywords strict mode rejects (OpenAI's structured outputs: "supported schemas"). */
const UNSUPPORTED = ["patternProperties", "propertyNames", "unevaluatedProperties", "dependentSchemas", "if", "not", "oneOf", "allOf", "prefixItems", "contains"]

/**
 * Whether OpenAI's strict mode accepts a JSON Schema: an object at the root; every object closed
 * (`additionalProperties: false`) with all its properties required; no keyword strict mode rejects.
 * An optional field or a record (`Schema.Record`) fails it.
 */
export const strictCompatible = (schema: unknown): boolean => {
  if (!isNode(schema) || schema["type"] !== "object") return false
  const defs = isNode(schema["$defs"]) ? Object.values(schema["$defs"]) : []
  const seen = new Set<unknown>()
  const ok = (node: unknown): boolean => {
    if (typeof node === "boolean") return node
    if (!isNode(node) || seen.has(node)) return isNode(node)
    seen.add(node)
    if (UNSUPPORTED.some((k) => k in node) || Array.isArray(node["items"])) return false
    const isObject = node["type"] === "object" || (Array.isArray(node["type"]) && node["type"].includes("object")) || "properties" in node
    if (isObject) {
      const properties = isNode(node["properties"]) ? node["properties"] : {}
      const required = Array.isArray(node["required"]) ? node["required"] : []
      if (node["additionalProperties"] !== false) return false
      if (!Object.keys(properties).every((key) => required.includes(key))) return false
      if (!Object.values(properties).every(ok)) return false
    }
    const branches = Array.isArray(node["anyOf"]) ? node["anyOf"] : []
    return branches.every(ok) && (node["items"] === undefined || ok(node["items"]))
  }
  return ok(schema) && defs.every(ok)
}

/** The tools and `tool_choice` of a request; none when the toolkit is empty. */
export const prepareTools = (
  options: LanguageModel.ProviderOptions
): Either.Either<Pick<ChatSchema.ChatCompletionRequest, "tools" | "tool_choice">, AiError.MalformedInput> => {
  if (options.tools.length === 0) return Either.right({})
  const tools: Array<ChatSchema.FunctionTool> = []
  for (const tool of options.tools) {
    if (Tool.isProviderDefined(tool)) {
      return Either.left(malformedInput(`the tool ${tool.name} is defined by another provider; chat completions takes function tools only`))
    }
    const parameters = Tool.getJsonSchemaFromSchemaAst(tool.parametersSchema.ast) as unknown as Record<string, unknown>
    const description = tool.description ?? Tool.getDescriptionFromSchemaAst(tool.parametersSchema.ast)
    tools.push({
      type: "function",
      function: {
        name: tool.name,
        ...(description === undefined ? {} : { description }),
        parameters,
        ...(strictCompatible(parameters) ? { strict: true } : {})
      }
    })
  }
  const choice = options.toolChoice
  const tool_choice: ChatSchema.ToolChoice = typeof choice === "string"
    ? choice
    : "tool" in choice
    ? { type: "function", function: { name: choice.tool } }
    // `oneOf`: @effect/ai has already left out the tools not listed.
    : choice.mode === "required"
    ? "required"
    : "auto"
  return Either.right({ tools, tool_choice })
}

const instruction = (schema: unknown): ChatSchema.SystemMessage => ({
  role: "system",
  content: `Answer with one JSON value only, no prose and no code fence, matching this JSON Schema:\n${JSON.stringify(schema)}`
})

/** `response_format` for the provider options, and a system message to add (json_object mode). */
export const prepareResponseFormat = (
  options: LanguageModel.ProviderOptions
): { readonly response_format?: ChatSchema.ResponseFormat; readonly instruction?: ChatSchema.SystemMessage } => {
  const format = options.responseFormat
  if (format.type === "text") return {}
  const schema = Tool.getJsonSchemaFromSchemaAst(format.schema.ast) as unknown as Record<string, unknown>
  if (!strictCompatible(schema)) return { response_format: { type: "json_object" }, instruction: instruction(schema) }
  const description = Tool.getDescriptionFromSchemaAst(format.schema.ast)
  return {
    response_format: {
      type: "json_schema",
      json_schema: {
        // OpenAI allows letters, digits, `_` and `-` (at most 64).
        name: format.objectName.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "response",
        ...(description === undefined ? {} : { description }),
        schema,
        strict: true
      }
    }
  }
}

/** The whole request: the config's fields, then the model, the messages, tools and format. */
export const makeRequest = (
  model: string,
  config: Readonly<Record<string, unknown>>,
  options: LanguageModel.ProviderOptions
): Either.Either<ChatSchema.ChatCompletionRequest, AiError.MalformedInput> =>
  Either.gen(function* () {
    const messages = yield* toMessages(options.prompt)
    const tools = yield* prepareTools(options)
    const format = prepareResponseFormat(options)
    return {
      ...config,
      model,
      messages: format.instruction === undefined ? messages : [format.instruction, ...messages],
      ...tools,
      ...(format.response_format === undefined ? {} : { response_format: format.response_format })
    }
  })
