"""An example scoring app (Flask) with payload logging and custom logging.

Run it:

    OTEL_COLLECTOR_EXT_CONFIG=configs/payload-logging.yaml flask --app examples.flask_app run

The same endpoints as examples/fastapi_app.py. `WSGIMiddleware` wraps Flask's WSGI
app, so the correlation context is current in the views and while a streamed
response's generator runs.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator

import pandas as pd
from flask import Flask, Response, abort, jsonify, request

from otel_collector_ext import Collector
from otel_collector_ext.middleware import WSGIMiddleware

app = Flask(__name__)
app.wsgi_app = WSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]

inputs = Collector(name="model_inputs")
outputs = Collector(name="model_outputs")

WEIGHTS = {"age": 0.02, "income": 0.00001, "debt": -0.00003}


def predict(features: pd.DataFrame) -> pd.DataFrame:
    """The 'model': a weighted sum of the known columns."""
    score = sum(features[c].astype(float) * w for c, w in WEIGHTS.items() if c in features)
    return pd.DataFrame({"score": score, "approved": score > 0.5})


@app.post("/score")
def score() -> Response:
    """JSON scoring: {"columns": [...], "data": [[...], ...]}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "data" not in body:
        abort(400, "expected {'columns': [...], 'data': [[...]]}")
    features = pd.DataFrame(body["data"], columns=body.get("columns"))
    inputs.collect(features)
    result = predict(features)
    outputs.collect(result)
    return jsonify(scores=result["score"].tolist())


@app.post("/score/csv")
def score_csv() -> Response:
    """CSV scoring: the body is a CSV table with a header row."""
    try:
        features = pd.read_csv(io.BytesIO(request.get_data()))
    except (ValueError, pd.errors.ParserError) as e:
        abort(400, f"not a CSV table: {e}")
    inputs.collect(features)
    result = predict(features)
    outputs.collect(result)
    return jsonify(scores=result["score"].tolist())


@app.post("/score/image")
def score_image() -> Response:
    """Binary scoring (an image, any bytes): the payload is recorded as bytes."""
    image = request.get_data()
    digest = hashlib.sha256(image).hexdigest()
    inputs.collect({"size": len(image), "sha256": digest})
    label = "cat" if image[:1] < b"\x80" else "dog"
    outputs.collect({"label": label, "confidence": 0.9})
    return jsonify(label=label, sha256=digest, size=len(image))


@app.post("/generate")
def generate() -> Response:
    """Server-sent events: one token per event, streamed as it is produced."""
    params = request.get_json(silent=True) or {}
    prompt = str(params.get("prompt", ""))
    count = int(params.get("max_tokens", 5))
    interval = float(params.get("interval_ms", 0)) / 1000
    inputs.collect({"prompt": prompt, "max_tokens": count})

    def tokens() -> Iterator[bytes]:
        produced = []
        for i in range(count):
            token = f"tok{i}"
            produced.append(token)
            yield f"data: {token}\n\n".encode()
            if interval:
                time.sleep(interval)  # stands for the model producing the next token
        outputs.collect({"text": " ".join(produced), "tokens": len(produced)})

    return Response(tokens(), mimetype="text/event-stream")


@app.get("/health")
def health() -> Response:
    return jsonify(status="ok")
