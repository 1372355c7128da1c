"""OpenAI-compatible test apps (FastAPI and Flask) built on examples/genai_app.py.

The model name picks the behaviour:
  echo       the example's answer (streamed in words, or one JSON body)
  paced      20 chunks; after the first, the stream waits for POST /release/<id> from
             the test (a handshake, so the test knows the client got a chunk while the
             app had not produced the last one); GET /progress/<id> says how many
             chunks the app has produced so far
  tools      a streamed tool call, its arguments in fragments
  forever    a stream that never ends (1000-byte chunks) until the client leaves
  malformed  SSE with non-JSON data, junk lines and an over-long line among good chunks
  text       a 200 answer that is plain text, not JSON
A request body that is not JSON gets a 400 OpenAI error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from flask import Flask, Response, request

from examples.genai_app import chat_chunks, chat_completion, reply_to, words
from otel_collector_ext.middleware import ASGIMiddleware, WSGIMiddleware

PACED_CHUNKS = 20
RELEASE_TIMEOUT = 30.0  # the app goes on by itself after this: a test never hangs on it


def pieces_for(body: dict[str, Any]) -> list[str]:
    model = body.get("model")
    if model == "paced":
        return [f"w{i} " for i in range(PACED_CHUNKS)]
    return words(reply_to(body))


def tool_call_events(body: dict[str, Any]) -> list[bytes]:
    base = {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "model": "tools"}
    fragments = ['{"city"', ': "Par', 'is"}']
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": f}}]}}]} for f in fragments]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}})
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def malformed_events(body: dict[str, Any]) -> list[bytes]:
    good = chat_chunks(body, ["ok", " fine"])
    return [good[0], b"data: {not json\n\n", b"junk without a colon\n", b": a comment\n",
            b"data: " + b"x" * (2 * 1024 * 1024) + b"\n\n", good[1], *good[2:]]


def forever_event(i: int) -> bytes:
    chunk = {"id": "chatcmpl-forever", "object": "chat.completion.chunk", "model": "forever",
             "choices": [{"index": 0, "delta": {"content": f"{i:06d}" + "y" * 994}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


# --- FastAPI -------------------------------------------------------------------------

def fastapi_app() -> Any:
    app = FastAPI()
    app.add_middleware(ASGIMiddleware)
    produced: dict[str, int] = {}
    released: dict[str, asyncio.Event] = {}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/progress/{rid}")
    def progress(rid: str) -> dict[str, int]:
        return {"produced": produced.get(rid, 0)}

    @app.post("/release/{rid}")
    def release(rid: str) -> dict[str, bool]:
        released.setdefault(rid, asyncio.Event()).set()
        return {"released": True}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(error_body("the body is not JSON"), status_code=400)
        model = body.get("model")
        rid = request.headers.get("x-request-id", "")
        if model == "text":
            return PlainTextResponse("this is not JSON")
        if not body.get("stream"):
            return JSONResponse(chat_completion(body, reply_to(body)))

        async def stream() -> AsyncIterator[bytes]:
            if model == "forever":
                i = 0
                while True:
                    yield forever_event(i)
                    i += 1
                    await asyncio.sleep(0)
            events = (tool_call_events(body) if model == "tools" else
                      malformed_events(body) if model == "malformed" else
                      chat_chunks(body, pieces_for(body)))
            for i, event in enumerate(events):
                yield event
                produced[rid] = i + 1
                if model == "paced" and i == 0:
                    gate = released.setdefault(rid, asyncio.Event())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gate.wait(), RELEASE_TIMEOUT)
                elif model == "paced":
                    await asyncio.sleep(0.01)  # spacing between tokens, not synchronisation

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


app = fastapi_app()  # what uvicorn serves: "tests.support.genai_apps:app"


# --- Flask ---------------------------------------------------------------------------

class FlaskGate:
    """The Flask app's handshake, in the test's own process: threading events."""

    def __init__(self) -> None:
        self.produced: dict[str, int] = {}
        self.released: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def event(self, rid: str) -> threading.Event:
        with self.lock:
            return self.released.setdefault(rid, threading.Event())


def flask_app(gate: FlaskGate) -> Any:
    app = Flask("genai_test")

    @app.post("/v1/chat/completions")
    def chat() -> Any:
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return error_body("the body is not JSON"), 400
        rid = request.headers.get("x-request-id", "")
        if not body.get("stream"):
            return chat_completion(body, reply_to(body))

        def stream() -> Iterator[bytes]:
            for i, event in enumerate(chat_chunks(body, pieces_for(body))):
                yield event
                gate.produced[rid] = i + 1
                if body.get("model") == "paced" and i == 0:
                    gate.event(rid).wait(RELEASE_TIMEOUT)
                elif body.get("model") == "paced":
                    time.sleep(0.01)  # spacing between tokens, not synchronisation

        return Response(stream(), mimetype="text/event-stream")

    app.wsgi_app = WSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app
