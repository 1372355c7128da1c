"""An example OpenAI-compatible endpoint (FastAPI) recorded as `gen_ai` rows.

Run it, then point any OpenAI client at it:

    OTEL_COLLECTOR_EXT_CONFIG=configs/genai.yaml uvicorn examples.genai_app:app --port 8000

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    for chunk in client.chat.completions.create(
            model="echo-1", messages=[{"role": "user", "content": "Hello there"}],
            stream=True, stream_options={"include_usage": True}):
        print(chunk.choices[0].delta.content if chunk.choices else chunk.usage)

The "model" echoes the last user message word by word. The middleware streams every
chunk to the client as it is produced, and writes one row per call to the `gen_ai`
collection (see the README's "GenAI endpoints"); read them with
`otel_collector_ext.load(..., collection="gen_ai")`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from otel_collector_ext.middleware import ASGIMiddleware

app = FastAPI(title="example OpenAI-compatible endpoint")
# Seconds between streamed words, as a model takes its time per token (0 in bench/).
TOKEN_DELAY = float(os.environ.get("EXAMPLE_TOKEN_DELAY", "0.05"))
app.add_middleware(ASGIMiddleware)


def reply_to(body: dict[str, Any]) -> str:
    """The 'model': echoes the text of the last user message."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return "You said: " + message["content"]
    return "Hello!"


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def chat_completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    """A non-streamed Chat Completions response."""
    return {"id": "chatcmpl-example", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "echo-1"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": _usage(body, text)}


def chat_chunks(body: dict[str, Any], pieces: list[str]) -> list[bytes]:
    """The server-sent events of a streamed answer made of `pieces` (then usage, if the
    client asked with stream_options.include_usage, and [DONE])."""
    base = {"id": "chatcmpl-example", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model", "echo-1")}
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        finish = "stop" if i == len(pieces) - 1 else None
        events.append({**base, "choices": [{"index": 0, "delta": delta,
                                            "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": _usage(body, "".join(pieces))})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def words(text: str) -> list[str]:
    """`text` in streaming pieces: each word with the space before it."""
    parts = text.split(" ")
    return [parts[0]] + [" " + w for w in parts[1:]]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Any:
    body = await request.json()
    text = reply_to(body)
    if not body.get("stream"):
        return JSONResponse(chat_completion(body, text))

    async def stream() -> AsyncIterator[bytes]:
        for event in chat_chunks(body, words(text)):
            yield event
            await asyncio.sleep(TOKEN_DELAY)

    return StreamingResponse(stream(), media_type="text/event-stream")


@app.post("/v1/embeddings")
async def embeddings(request: Request) -> dict[str, Any]:
    body = await request.json()
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    return {"object": "list", "model": body.get("model", "embed-1"),
            "data": [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0]}
                     for i, t in enumerate(inputs)],
            "usage": {"prompt_tokens": sum(len(str(t).split()) for t in inputs),
                      "total_tokens": sum(len(str(t).split()) for t in inputs)}}
