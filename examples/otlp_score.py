"""A scoring process that ships its records over OTLP to the collector service.

Run `serve` in one shell and this script in another, both from the repository root
with the virtualenv active (`source .venv/bin/activate`):

    otel-collector-ext serve --config configs/collector.yaml
    OTEL_COLLECTOR_EXT_CONFIG=configs/otlp-scoring.yaml python examples/otlp_score.py

The scoring code is the same as in-process; only the configuration's `exporter:`
block (`type: otlp`) differs. `serve` writes the files, here to ./collected:
`otel-collector-ext ls -d ./collected` lists them.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import otel_collector_ext as oce
from otel_collector_ext import Collector
from otel_collector_ext.cli.commands.demo import score, synthetic_features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="synthetic requests to score")
    args = parser.parse_args()
    if not os.environ.get("OTEL_COLLECTOR_EXT_CONFIG"):
        print("set OTEL_COLLECTOR_EXT_CONFIG=configs/otlp-scoring.yaml (an exporter of type "
              "otlp), or the records stay in this process's ./collected", file=sys.stderr)
        return 2
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    rng = np.random.default_rng(11)
    for _ in range(args.requests):
        features = synthetic_features(rng)
        context = inputs.collect(features)
        outputs.collect(score(features), context)
    delivered = oce.flush(60_000)  # False if any record could not be sent (serve not up?)
    stats = oce.stats()
    oce.shutdown()
    sent = sum(v for k, v in stats.items() if k.startswith("records.exported"))
    print(f"scored {args.requests} requests; {sent} records sent over OTLP"
          + ("" if delivered else "; some were NOT delivered (is serve running?)"))
    lost = {k: v for k, v in stats.items() if k.startswith("records.dropped") and v}
    if lost:
        print(f"dropped: {lost}", file=sys.stderr)
    return 0 if delivered and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
