/**
 * Qwen3 ChatML prompts: the semantics of the Jinja chat template the Qwen3/Bonsai files carry
 * (`tokenizer.chat_template`), written out in code, tool definitions included.
 *
 * @module
 */

import { type Tokenizer, TokenType } from "./tokenizer.ts";
import type { ChatMessage, ToolDefinition } from "./request.ts";

/** Prompt options, as the template's variables. */
export interface ChatOptions {
  /** Let the model think: when false (default) an empty `<think>\n\n</think>\n\n` block is pre-filled. */
  enableThinking?: boolean;
  /** End with the opening of an assistant turn (default true). */
  addGenerationPrompt?: boolean;
  /** Tools listed in the system turn, as the template's `tools` variable (OpenAI form). */
  tools?: ToolDefinition[];
}

/** A prompt piece: template markup that is a special token, or text. */
type Part = { special: string } | { text: string };

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/**
 * ChatML token ids: template markup tokens (`<|im_start|>`, `<think>`, ...) are inserted by id,
 * message content is tokenized with `parseSpecial: false`, so a message cannot forge turn
 * boundaries. For content without special-token texts the result equals
 * `tok.encode(renderChat(messages, opts), { parseSpecial: true })`.
 */
export function encodeChat(
  tok: Tokenizer,
  messages: ChatMessage[],
  opts: ChatOptions = {},
): number[] {
  for (const required of ["<|im_start|>", "<|im_end|>"]) {
    if (tok.tokenId(required) === undefined) {
      throw new Error(
        `tokenizer has no ${required} token: not a ChatML vocabulary`,
      );
    }
  }
  const ids: number[] = [];
  let pendingText = "";
  // Adjacent text pieces are joined before encoding so BPE sees the same runs as encode(renderChat()).
  const flushText = () => {
    if (pendingText !== "") {
      // A loop, not push(...): spreading ~100k ids as arguments overflows the stack.
      for (const id of tok.encode(pendingText, { parseSpecial: false })) ids.push(id);
    }
    pendingText = "";
  };
  for (const part of chatParts(messages, opts)) {
    if ("text" in part) {
      pendingText += part.text;
      continue;
    }
    const id = tok.tokenId(part.special);
    const type = id === undefined ? undefined : tok.tokenType(id);
    if (
      id !== undefined &&
      (type === TokenType.CONTROL || type === TokenType.USER_DEFINED)
    ) {
      flushText();
      ids.push(id);
    } else {
      pendingText += part.special; // a vocabulary without e.g. <think> spells it out
    }
  }
  flushText();
  return ids;
}

/** The same prompt as text (for display and tests). */
export function renderChat(
  messages: ChatMessage[],
  opts: ChatOptions = {},
): string {
  return chatParts(messages, opts).map((p) => "text" in p ? p.text : p.special)
    .join("");
}

function chatParts(messages: ChatMessage[], opts: ChatOptions): Part[] {
  validate(messages);
  const parts: Part[] = [];
  const startTurn = (role: string) => parts.push({ special: "<|im_start|>" }, { text: `${role}\n` });
  const endTurn = () => parts.push({ special: "<|im_end|>" }, { text: "\n" });

  if (opts.tools && opts.tools.length > 0) {
    startTurn("system");
    if (messages.length > 0 && messages[0].role === "system") parts.push({ text: messages[0].content + "\n\n" });
    parts.push({
      text: "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    });
    for (const tool of opts.tools) {
      const fn: Record<string, unknown> = { name: tool.name };
      if (tool.description !== undefined) fn.description = tool.description;
      if (tool.parameters !== undefined) fn.parameters = tool.parameters;
      parts.push({ text: "\n" + pythonJson({ type: "function", function: fn }) });
    }
    parts.push(
      // The tag names are special tokens wherever the template text has them, as when a
      // Hugging Face tokenizer encodes the rendered prompt.
      { text: "\n</tools>\n\nFor each function call, return a json object with function name and arguments within " },
      { special: "<tool_call>" },
      { special: "</tool_call>" },
      { text: " XML tags:\n" },
      { special: "<tool_call>" },
      { text: '\n{"name": <function-name>, "arguments": <args-json-object>}\n' },
      { special: "</tool_call>" },
    );
    endTurn();
  } else if (messages.length > 0 && messages[0].role === "system") {
    startTurn("system");
    parts.push({ text: messages[0].content });
    endTurn();
  }
  // Reasoning is kept only for assistant turns after the last real user query.
  let lastQueryIndex = messages.length - 1;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (
      m.role === "user" &&
      !(m.content.startsWith("<tool_response>") &&
        m.content.endsWith("</tool_response>"))
    ) {
      lastQueryIndex = i;
      break;
    }
  }
  messages.forEach((m, i) => {
    const isLast = i === messages.length - 1;
    if (m.role === "user" || (m.role === "system" && i > 0)) {
      startTurn(m.role);
      parts.push({ text: m.content });
      endTurn();
    } else if (m.role === "assistant") {
      let content = m.content;
      let reasoning = "";
      if (content.includes("</think>")) {
        const pieces = content.split("</think>");
        content = lstripNewlines(pieces[pieces.length - 1]);
        const before = rstripNewlines(pieces[0]).split("<think>");
        reasoning = lstripNewlines(before[before.length - 1]);
      }
      startTurn("assistant");
      if (i > lastQueryIndex && (isLast || reasoning !== "")) {
        parts.push(
          { special: "<think>" },
          { text: `\n${rstripNewlines(lstripNewlines(reasoning))}\n` },
          { special: "</think>" },
          { text: `\n\n${lstripNewlines(content)}` },
        );
      } else {
        parts.push({ text: content });
      }
      // As the Qwen3 template renders message.tool_calls: one tagged call each, newline-separated.
      (m.toolCalls ?? []).forEach((call, j) => {
        if (j > 0 || content !== "") parts.push({ text: "\n" });
        parts.push(
          { special: "<tool_call>" },
          { text: `\n{"name": "${call.name}", "arguments": ${pythonJson(call.arguments)}}\n` },
          { special: "</tool_call>" },
        );
      });
      endTurn();
    } else if (m.role === "tool") {
      if (i === 0 || messages[i - 1].role !== "tool") {
        parts.push({ special: "<|im_start|>" }, { text: "user" });
      }
      parts.push(
        { text: "\n" },
        { special: "<tool_response>" },
        { text: `\n${m.content}\n` },
        { special: "</tool_response>" },
      );
      if (isLast || messages[i + 1].role !== "tool") endTurn();
    }
  });
  if (opts.addGenerationPrompt ?? true) {
    startTurn("assistant");
    if (!(opts.enableThinking ?? false)) {
      parts.push({ special: "<think>" }, { text: "\n\n" }, {
        special: "</think>",
      }, { text: "\n\n" });
    }
  }
  return parts;
}

function validate(messages: ChatMessage[]): void {
  if (!Array.isArray(messages)) {
    throw new TypeError("chat messages must be an array");
  }
  messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null) {
      throw new TypeError(`chat message ${i} is not an object`);
    }
    if (!ROLES.has(m.role)) {
      throw new TypeError(
        `chat message ${i} has role ${JSON.stringify(m.role)}; expected system, user, assistant or tool`,
      );
    }
    if (typeof m.content !== "string") {
      throw new TypeError(
        `chat message ${i} (${m.role}) content must be a string`,
      );
    }
  });
}

/** JSON as Python's `json.dumps` writes it (the template's `tojson`): `", "` and `": "` separators. */
export function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function lstripNewlines(s: string): string {
  let i = 0;
  while (i < s.length && s[i] === "\n") i++;
  return s.slice(i);
}

function rstripNewlines(s: string): string {
  let j = s.length;
  while (j > 0 && s[j - 1] === "\n") j--;
  return s.slice(0, j);
}
