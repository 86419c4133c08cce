/**
 * The mock "model"'s tool calls: when a request offers function tools, which it calls and with which
 * arguments, deterministically, as the chat-completions spec shapes them; and what it answers once
 * the tools' results are in.
 *
 * - `tool_choice: "none"`: no call.
 * - `{ type: "function", function: { name } }`: that function, always.
 * - `"required"`: the functions named in the last user message (the first one offered when none is
 *   named), always, as the spec makes it.
 * - `"auto"` (or absent): as `"required"`, unless the conversation ends with tool results: then a text
 *   answer quoting them.
 * - `parallel_tool_calls: false`: at most one call.
 *
 * Arguments conform to the function's `parameters` JSON Schema (`Content.valueForSchema`).
 * @internal
 */
import type * as ChatSchema from "../../ChatSchema.js"
import { contentText } from "../../internal/tokens.js"
import { hash, valueForSchema } from "./content.js"

const lastUserText = (messages: ReadonlyArray<ChatSchema.ChatMessage>): string => {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!
    if (message.role === "user") return contentText(message.content)
  }
  return ""
}

const mentions = (text: string, name: string): boolean =>
  new RegExp(`(^|[^A-Za-z0-9_])${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}($|[^A-Za-z0-9_])`, "i").test(text)

/** The tools the mock model calls for `request` (none when it answers with text). */
export const toolsToCall = (request: ChatSchema.ChatCompletionRequest): ReadonlyArray<ChatSchema.FunctionTool> => {
  const tools = request.tools ?? []
  const choice = request.tool_choice ?? "auto"
  if (tools.length === 0 || choice === "none") return []
  if (typeof choice === "object") return tools.filter((tool) => tool.function.name === choice.function.name).slice(0, 1)
  const last = request.messages[request.messages.length - 1]
  if (choice === "auto" && last?.role === "tool") return []
  const prompt = lastUserText(request.messages)
  const named = tools.filter((tool) => mentions(prompt, tool.function.name))
  const picked = named.length > 0 ? named : tools.slice(0, 1)
  return request.parallel_tool_calls === false ? picked.slice(0, 1) : picked
}

/** The calls of `tools`, with ids and arguments that depend only on the request (`h`, its hash). */
export const toolCalls = (
  tools: ReadonlyArray<ChatSchema.FunctionTool>,
  prompt: string,
  h: number
): Array<ChatSchema.FunctionToolCall> =>
  tools.map((tool, i) => {
    const hi = hash(`${h}:${tool.function.name}:${i}`)
    const args = valueForSchema(tool.function.parameters ?? { type: "object", properties: {} }, prompt, hi)
    return {
      id: `call_${hi.toString(16).padStart(8, "0")}`,
      type: "function",
      function: { name: tool.function.name, arguments: JSON.stringify(args) }
    }
  })

/**
 * For a conversation that ends with tool results: a text answer quoting each (the function's name,
 * found in the assistant message that called it, and at most 200 characters of its result).
 * Undefined for any other conversation.
 */
export const answerFromToolResults = (messages: ReadonlyArray<ChatSchema.ChatMessage>, h: number): string | undefined => {
  const results: Array<ChatSchema.ToolMessage> = []
  for (let i = messages.length - 1; i >= 0 && messages[i]!.role === "tool"; i--) results.unshift(messages[i] as ChatSchema.ToolMessage)
  if (results.length === 0) return undefined
  const names = new Map<string, string>()
  for (const message of messages) {
    if (message.role !== "assistant") continue
    for (const call of message.tool_calls ?? []) names.set(call.id, call.type === "function" ? call.function.name : call.custom.name)
  }
  const quoted = results.map((r) => `${names.get(r.tool_call_id) ?? r.tool_call_id} returned ${contentText(r.content).slice(0, 200)}`)
  return `Mock answer ${h.toString(16).padStart(8, "0")}: ${quoted.join("; ")}.`
}
