"""An example scoring app (FastAPI) with payload logging and custom logging.

Run it:

    OTEL_COLLECTOR_EXT_CONFIG=configs/payload-logging.yaml uvicorn examples.fastapi_app:app

Every request yields a `request` and a `response` record (the middleware), and the
handlers log `model_inputs` / `model_outputs` without passing a context: the
middleware made the request's correlation id current, so all four records join on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from otel_collector_ext import Collector
from otel_collector_ext.middleware import ASGIMiddleware

app = FastAPI(title="example scoring app")
app.add_middleware(ASGIMiddleware)

inputs = Collector(name="model_inputs")
outputs = Collector(name="model_outputs")

WEIGHTS = {"age": 0.02, "income": 0.00001, "debt": -0.00003}


def predict(features: pd.DataFrame) -> pd.DataFrame:
    """The 'model': a weighted sum of the known columns."""
    score = sum(features[c].astype(float) * w for c, w in WEIGHTS.items() if c in features)
    return pd.DataFrame({"score": score, "approved": score > 0.5})


class ScoreRequest(BaseModel):
    columns: list[str]
    data: list[list[float]]


@app.post("/score")
def score(request: ScoreRequest) -> dict[str, list[float]]:
    """JSON scoring; a plain `def`, so FastAPI runs it in its thread pool."""
    features = pd.DataFrame(request.data, columns=request.columns)
    inputs.collect(features)
    result = predict(features)
    outputs.collect(result)
    return {"scores": result["score"].tolist()}


@app.post("/score/csv")
async def score_csv(request: Request) -> dict[str, list[float]]:
    """CSV scoring: the body is a CSV table with a header row."""
    try:
        features = pd.read_csv(io.BytesIO(await request.body()))
    except (ValueError, pd.errors.ParserError) as e:
        raise HTTPException(status_code=400, detail=f"not a CSV table: {e}") from None
    inputs.collect(features)
    result = predict(features)
    outputs.collect(result)
    return {"scores": result["score"].tolist()}


@app.post("/score/image")
async def score_image(request: Request) -> dict[str, object]:
    """Binary scoring (an image, any bytes): the payload is recorded as bytes."""
    image = await request.body()
    digest = hashlib.sha256(image).hexdigest()
    inputs.collect({"size": len(image), "sha256": digest})
    label = "cat" if image[:1] < b"\x80" else "dog"
    outputs.collect({"label": label, "confidence": 0.9})
    return {"label": label, "sha256": digest, "size": len(image)}


@app.post("/generate")
async def generate(request: Request) -> StreamingResponse:
    """Server-sent events: one token per event, streamed as it is produced."""
    params = json.loads(await request.body() or b"{}")
    prompt = str(params.get("prompt", ""))
    count = int(params.get("max_tokens", 5))
    interval = float(params.get("interval_ms", 0)) / 1000
    inputs.collect({"prompt": prompt, "max_tokens": count})

    async def tokens() -> AsyncIterator[bytes]:
        produced = []
        for i in range(count):
            token = f"tok{i}"
            produced.append(token)
            yield f"data: {token}\n\n".encode()
            await asyncio.sleep(interval)
        outputs.collect({"text": " ".join(produced), "tokens": len(produced)})

    return StreamingResponse(tokens(), media_type="text/event-stream")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
