"""What an OpenAI-compatible request and response say, as gen_ai row columns.

Understood: Chat Completions (`/chat/completions`), legacy Completions
(`/completions`), Embeddings (`/embeddings`) and the Responses API (`/responses`),
under any prefix (`/v1/...`, Azure OpenAI's `/openai/deployments/<name>/...`), as JSON
bodies or, for the three that stream, as server-sent events. `StreamAssembler`
rebuilds the output from the deltas of a stream: text per choice, and tool calls
from their `index`-keyed fragments (id and name once, arguments in pieces).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import messages as M
from . import record as R

CHAT, TEXT_COMPLETION, EMBEDDINGS, RESPONSES = "chat", "text_completion", "embeddings", "responses"
# Path endings → the semantic conventions' operation name (the Responses API is chat).
_ENDINGS = (("/chat/completions", CHAT), ("/completions", TEXT_COMPLETION),
            ("/embeddings", EMBEDDINGS), ("/responses", RESPONSES))
OPERATION_NAMES = {CHAT: "chat", TEXT_COMPLETION: "text_completion",
                   EMBEDDINGS: "embeddings", RESPONSES: "chat"}


def api_of_path(path: str) -> str | None:
    """Which OpenAI API a request path is (CHAT, ...), or None."""
    trimmed = path.rstrip("/")
    for ending, api in _ENDINGS:
        if trimmed.endswith(ending):
            return api
    return None


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def request_columns(api: str, body: Mapping[str, Any], budget: M.Budget | None
                    ) -> dict[str, Any]:
    """Columns from a parsed request body; input messages only with a `budget`."""
    cols: dict[str, Any] = {
        R.OPERATION: OPERATION_NAMES[api],
        R.REQUEST_MODEL: _str(body.get("model")),
        R.TEMPERATURE: _float(body.get("temperature")),
        R.TOP_P: _float(body.get("top_p")),
        R.MAX_TOKENS: _int(body.get("max_completion_tokens", body.get(
            "max_output_tokens", body.get("max_tokens")))),
        R.STREAM: body.get("stream") is True,
    }
    if budget is not None:
        if api == CHAT:
            cols[R.INPUT_MESSAGES] = M.chat_inputs(body.get("messages"), budget)
        elif api == TEXT_COMPLETION:
            cols[R.INPUT_MESSAGES] = M.prompt_inputs(body.get("prompt"), budget)
        elif api == EMBEDDINGS:
            cols[R.INPUT_MESSAGES] = M.prompt_inputs(body.get("input"), budget)
        else:
            cols[R.INPUT_MESSAGES] = M.responses_inputs(body, budget)
    return cols


def usage_columns(usage: Any) -> dict[str, Any]:
    """Token counts (Chat/Completions/Embeddings name them prompt/completion_tokens, the
    Responses API input/output_tokens)."""
    if not isinstance(usage, Mapping):
        return {}
    return {R.INPUT_TOKENS: _int(usage.get("prompt_tokens", usage.get("input_tokens"))),
            R.OUTPUT_TOKENS: _int(usage.get("completion_tokens", usage.get("output_tokens")))}


def error_type(body: Any) -> str | None:
    """The `error.type` (else `error.code`) of an OpenAI error body."""
    error = _get(body, "error")
    for key in ("type", "code"):
        value = _get(error, key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)[: R.MAX_NAME_CHARS]
    return None


def _responses_finish(response: Mapping[str, Any]) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        reason = _get(response, "incomplete_details", "reason")
        return "length" if reason == "max_output_tokens" else _str(reason) or "incomplete"
    if any(isinstance(i, Mapping) and i.get("type") == "function_call"
           for i in response.get("output") or ()):
        return "tool_call"
    return {"completed": "stop", "failed": "error"}.get(str(status), _str(status))


def response_columns(api: str, body: Mapping[str, Any], budget: M.Budget | None
                     ) -> dict[str, Any]:
    """Columns from a complete (non-streamed) response body."""
    if api == RESPONSES and isinstance(body.get("response"), Mapping):  # an event wrapper
        body = body["response"]
    cols: dict[str, Any] = {R.RESPONSE_ID: _str(body.get("id")),
                            R.RESPONSE_MODEL: _str(body.get("model")),
                            **usage_columns(body.get("usage"))}
    if api == RESPONSES:
        finish = _responses_finish(body)
        cols[R.FINISH_REASONS] = [finish] if finish else None
        if budget is not None:
            cols[R.OUTPUT_MESSAGES] = M.responses_outputs(body.get("output"), finish, budget)
        return cols
    if api == EMBEDDINGS:
        cols[R.RESPONSE_ID] = None  # embeddings responses have no id
        return cols
    assembler = StreamAssembler(api)
    for choice in body.get("choices") or ():
        if isinstance(choice, Mapping):
            assembler.choice(choice, message_key="message" if api == CHAT else None)
    cols[R.FINISH_REASONS] = assembler.finish_reasons()
    if budget is not None:
        cols[R.OUTPUT_MESSAGES] = assembler.messages(budget)
    return cols


@dataclass
class _Choice:
    role: str = "assistant"
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    # tool call index → [id, name, argument fragments]
    tool_calls: dict[int, list[Any]] = field(default_factory=dict)


class StreamAssembler:
    """Rebuilds the output of a streamed (or complete) response, within a byte budget.

    `limit` bounds the text and tool-call arguments kept over all choices: past it,
    fragments are counted as dropped (`truncated`), so a never-ending stream costs
    at most `limit` bytes here.
    """

    MAX_CHOICES = 128
    MAX_TOOL_CALLS = 128

    def __init__(self, api: str, limit: int = 1 << 62) -> None:
        self.api = api
        self.limit = limit
        self.kept = 0
        self.truncated = False
        self.choices: dict[int, _Choice] = {}
        self.columns: dict[str, Any] = {}  # id, model, usage as the chunks say them
        self.done = False  # the final event (usage chunk, [DONE], response.completed) came
        self.saw_usage = False
        self.first_token = False  # set once a chunk carried output
        self.final_response: Mapping[str, Any] | None = None  # Responses API's last event

    def _keep(self, text: str) -> str | None:
        size = len(text)  # characters: a cheap bound, counted before encoding
        if self.kept + size > self.limit:
            self.truncated = True
            room = self.limit - self.kept
            if room <= 0:
                return None
            text = text[:room]
            size = room
        self.kept += size
        return text

    # -- feeding -----------------------------------------------------------------

    def chunk(self, data: Mapping[str, Any], event: str = "") -> None:
        """One parsed SSE `data:` object of the stream."""
        if self.api == RESPONSES:
            self._responses_event(data, event or str(data.get("type") or ""))
            return
        for key, column in (("id", R.RESPONSE_ID), ("model", R.RESPONSE_MODEL)):
            if isinstance(data.get(key), str) and column not in self.columns:
                self.columns[column] = data[key][: R.MAX_NAME_CHARS]
        if isinstance(data.get("usage"), Mapping):
            self.columns.update(usage_columns(data["usage"]))
            self.saw_usage = True
        for choice in data.get("choices") or ():
            if isinstance(choice, Mapping):
                self.choice(choice, message_key="delta" if self.api == CHAT else None)

    def choice(self, choice: Mapping[str, Any], message_key: str | None) -> None:
        index = _int(choice.get("index")) or 0
        found = self.choices.get(index)
        if found is None:
            if len(self.choices) >= self.MAX_CHOICES:
                self.truncated = True
                return
            found = self.choices[index] = _Choice()
        if isinstance(choice.get("finish_reason"), str):
            found.finish_reason = choice["finish_reason"][: R.MAX_NAME_CHARS]
        part = choice.get(message_key) if message_key else choice
        if not isinstance(part, Mapping):
            return
        if isinstance(part.get("role"), str):
            found.role = part["role"][: R.MAX_NAME_CHARS]
        text = part.get("content") if message_key else part.get("text")
        if isinstance(text, str) and text:
            self.first_token = True
            kept = self._keep(text)
            if kept:
                found.text.append(kept)
        for call in part.get("tool_calls") or ():
            if isinstance(call, Mapping):
                self._tool_call(found, call)

    def _tool_call(self, choice: _Choice, call: Mapping[str, Any]) -> None:
        self.first_token = True
        index = _int(call.get("index"))
        if index is None:
            index = len(choice.tool_calls)
        entry = choice.tool_calls.get(index)
        if entry is None:
            if len(choice.tool_calls) >= self.MAX_TOOL_CALLS:
                self.truncated = True
                return
            entry = choice.tool_calls[index] = [None, None, []]
        inner = call.get("function")
        function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else {}
        if isinstance(call.get("id"), str):
            entry[0] = call["id"][: R.MAX_NAME_CHARS]
        if isinstance(function.get("name"), str):
            entry[1] = function["name"][: R.MAX_NAME_CHARS]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            kept = self._keep(arguments)
            if kept:
                entry[2].append(kept)

    def _responses_event(self, data: Mapping[str, Any], event: str) -> None:
        if event.endswith(".delta"):
            self.first_token = True
            if event == "response.output_text.delta" and isinstance(data.get("delta"), str):
                kept = self._keep(data["delta"])
                if kept:
                    self.choices.setdefault(0, _Choice()).text.append(kept)
            return
        response = data.get("response")
        if event in ("response.completed", "response.incomplete", "response.failed") and \
                isinstance(response, Mapping):
            self.done = True
            self.final_response = response
            if isinstance(response.get("usage"), Mapping):
                self.saw_usage = True
        elif event == "response.created" and isinstance(response, Mapping):
            self.columns.setdefault(R.RESPONSE_ID, _str(response.get("id")))
            self.columns.setdefault(R.RESPONSE_MODEL, _str(response.get("model")))

    # -- results -----------------------------------------------------------------

    def finish_reasons(self) -> list[str] | None:
        reasons = [c.finish_reason for _, c in sorted(self.choices.items()) if c.finish_reason]
        return reasons or None

    def messages(self, budget: M.Budget) -> list[dict[str, Any]] | None:
        if not self.choices:
            return None
        out = []
        for _, choice in sorted(self.choices.items()):
            parts: list[dict[str, Any]] = []
            if choice.text:
                parts.append({"type": "text", "content": budget.take("".join(choice.text))})
            for _, (call_id, name, fragments) in sorted(choice.tool_calls.items()):
                parts.append({"type": "tool_call", "id": call_id, "name": name,
                              "arguments": M.tool_arguments("".join(fragments), budget)})
            out.append({"role": choice.role, "parts": parts,
                        "finish_reason": _semconv_finish(choice.finish_reason)})
        return out

    def result(self, budget: M.Budget | None) -> dict[str, Any]:
        """The response columns of what was fed."""
        final = self.final_response
        if final is not None:  # Responses API: the final event holds the whole response
            cols = response_columns(RESPONSES, final, budget)
            if budget is not None and cols.get(R.OUTPUT_MESSAGES) is None and self.choices:
                cols[R.OUTPUT_MESSAGES] = self.messages(budget)
            return {**self.columns, **{k: v for k, v in cols.items() if v is not None}}
        cols = dict(self.columns)
        cols[R.FINISH_REASONS] = self.finish_reasons()
        if budget is not None:
            cols[R.OUTPUT_MESSAGES] = self.messages(budget)
        return cols


def _semconv_finish(reason: str | None) -> str | None:
    # The conventions' FinishReason says tool_call where OpenAI says tool_calls.
    return "tool_call" if reason in ("tool_calls", "function_call") else reason
