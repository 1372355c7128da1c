"""OpenAI-style messages in the OpenTelemetry GenAI message form.

The semantic conventions' form (gen-ai-input-messages.json / gen-ai-output-messages.json):
a message is `{"role", "parts": [...]}` (output messages add `finish_reason`), a part is
`{"type": "text", "content"}`, `{"type": "tool_call", "id", "name", "arguments"}`,
`{"type": "tool_call_response", "id", "response"}`, or another typed part (`uri`,
`blob`, `reasoning`, or the API's own type kept as it came).

Text is cut to a byte budget shared by all the parts of one column (`Budget`), so a
huge prompt costs at most `max_content_bytes` in the row; the row is then flagged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class Budget:
    """How many UTF-8 bytes of message text one column may still hold."""

    __slots__ = ("left", "truncated")

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.truncated = False

    def take(self, text: Any) -> Any:
        """`text` (str), cut to what is left of the budget; other values pass unchanged."""
        if not isinstance(text, str):
            return text
        data = text.encode("utf-8", "surrogatepass")
        if len(data) <= self.left:
            self.left -= len(data)
            return text
        cut = data[: max(self.left, 0)].decode("utf-8", "ignore")
        self.left = 0
        self.truncated = True
        return cut


def tool_arguments(value: Any, budget: Budget) -> Any:
    """Tool-call arguments: OpenAI sends JSON text; the conventions show the object."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return budget.take(value)
        if len(value) <= budget.left:
            budget.left -= len(value)
            return parsed
        return budget.take(value)
    return value


def _content_parts(content: Any, budget: Budget) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": budget.take(content)}]
    parts: list[dict[str, Any]] = []
    items = content if isinstance(content, Sequence) else [content]
    for item in items:
        if isinstance(item, str):
            parts.append({"type": "text", "content": budget.take(item)})
            continue
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "content": budget.take(item.get("text"))})
        elif kind in ("image_url", "input_image"):
            url = item.get("image_url")
            url = url.get("url") if isinstance(url, Mapping) else url
            if isinstance(url, str) and url.startswith("data:"):
                parts.append({"type": "blob", "modality": "image", "content": budget.take(url)})
            else:
                parts.append({"type": "uri", "modality": "image", "uri": budget.take(url)})
        elif kind == "refusal":
            parts.append({"type": "refusal", "content": budget.take(item.get("refusal"))})
        elif isinstance(kind, str):
            parts.append({"type": kind})  # kept by type; its payload is not interpreted
    return parts


def _tool_call_parts(calls: Any, budget: Budget) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in calls if isinstance(calls, Sequence) and not isinstance(calls, str) else ():
        if not isinstance(call, Mapping):
            continue
        inner = call.get("function")
        function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else call
        parts.append({"type": "tool_call", "id": call.get("id") or call.get("call_id"),
                      "name": function.get("name"),
                      "arguments": tool_arguments(function.get("arguments"), budget)})
    return parts


def chat_message(message: Mapping[str, Any], budget: Budget) -> dict[str, Any]:
    """One Chat Completions message (request or response side) in the conventions' form."""
    role = message.get("role") if isinstance(message.get("role"), str) else "user"
    if role == "tool":
        parts: list[dict[str, Any]] = [{
            "type": "tool_call_response", "id": message.get("tool_call_id"),
            "response": _flat_text(message.get("content"), budget)}]
    else:
        parts = _content_parts(message.get("content"), budget)
        parts += _tool_call_parts(message.get("tool_calls"), budget)
        legacy = message.get("function_call")
        if isinstance(legacy, Mapping):
            parts += _tool_call_parts([{"function": legacy}], budget)
    out: dict[str, Any] = {"role": "system" if role == "developer" else role, "parts": parts}
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _flat_text(content: Any, budget: Budget) -> Any:
    if isinstance(content, str) or content is None:
        return budget.take(content)
    return " ".join(str(p.get("content")) for p in _content_parts(content, budget)
                    if p.get("type") == "text")


def chat_inputs(messages: Any, budget: Budget) -> list[dict[str, Any]] | None:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        return None
    return [chat_message(m, budget) for m in messages if isinstance(m, Mapping)]


def prompt_inputs(prompt: Any, budget: Budget) -> list[dict[str, Any]] | None:
    """The `prompt` of a legacy completion or the `input` of an embeddings call."""
    if prompt is None:
        return None
    texts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, Sequence) else []
    parts = [{"type": "text", "content": budget.take(t)} for t in texts if isinstance(t, str)]
    return [{"role": "user", "parts": parts}] if parts else None


def responses_inputs(request: Mapping[str, Any], budget: Budget) -> list[dict[str, Any]] | None:
    """The `instructions` and `input` of a Responses API call."""
    out: list[dict[str, Any]] = []
    if isinstance(request.get("instructions"), str):
        out.append({"role": "system", "parts": [
            {"type": "text", "content": budget.take(request["instructions"])}]})
    items = request.get("input")
    if isinstance(items, str):
        out.append({"role": "user", "parts": [{"type": "text", "content": budget.take(items)}]})
    elif isinstance(items, Sequence):
        for item in items:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type")
            if kind == "function_call_output":
                out.append({"role": "tool", "parts": [{
                    "type": "tool_call_response", "id": item.get("call_id"),
                    "response": budget.take(item.get("output"))}]})
            elif kind == "function_call":
                out.append({"role": "assistant", "parts": _tool_call_parts([item], budget)})
            else:
                out.append(chat_message(item, budget))
    return out or None


def responses_outputs(output: Any, finish_reason: str | None,
                      budget: Budget) -> list[dict[str, Any]] | None:
    """A Responses API `output` list as one assistant message (text and tool calls)."""
    if not isinstance(output, Sequence):
        return None
    parts: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "message":
            parts += _content_parts(item.get("content"), budget)
        elif item.get("type") == "function_call":
            parts += _tool_call_parts([item], budget)
        elif item.get("type") == "reasoning":
            summary = item.get("summary")
            for s in summary if isinstance(summary, Sequence) else ():
                if isinstance(s, Mapping):
                    parts.append({"type": "reasoning", "content": budget.take(s.get("text"))})
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason or "stop"}]
