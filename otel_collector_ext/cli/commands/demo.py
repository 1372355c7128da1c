"""`demo`: score a few thousand synthetic requests and show what landed on disk.

It uses only the public API, exactly as a scoring script would: one Collector per
collection, the inputs' context passed to the outputs call, then `flush()` and
`load()` to read the files back. The last third of the requests drifts (higher
debt ratios, more requests from the west region, so also more refusals), which
`report` and `monitor` then show.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

import otel_collector_ext as oce


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="demo-data", help="local folder to write to")
    parser.add_argument("--requests", type=int, default=3000, help="synthetic requests to score")
    parser.add_argument("--hours", type=int, default=3, help="spread event times over N hours")
    parser.add_argument("--no-drift", dest="drift", action="store_false",
                        help="no drifted window at the end (by default the last third of the "
                             "requests drifts)")


#: The features that drift in the demo's last window, and how (for docs and tests).
DRIFTED = ("debt_ratio", "region")
REGIONS = ["north", "south", "east", "west"]


def synthetic_features(rng: np.random.Generator, drifted: bool = False) -> pd.DataFrame:
    """One synthetic scoring request: 1 to 3 rows of credit features. `drifted`: debt
    ratios shift up (beta(4, 2) instead of uniform) and the west region triples."""
    rows = int(rng.integers(1, 4))
    debt = rng.beta(4, 2, rows) if drifted else rng.random(rows)
    shares = [0.2, 0.2, 0.2, 0.4] if drifted else [0.25] * 4
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "debt_ratio": debt.round(3),
            "tenure_years": rng.integers(0, 30, rows),
            "region": rng.choice(REGIONS, rows, p=shares),
        }
    )


def score(features: pd.DataFrame) -> pd.DataFrame:
    """A stand-in model: a logistic score of three features."""
    z = (0.5 + 0.8 * features["age"] / 50 - 4.0 * features["debt_ratio"]
         + 0.1 * features["tenure_years"])
    p = 1 / (1 + np.exp(-z))
    return pd.DataFrame({"probability": p.round(4), "approved": p > 0.5})


MARKER = ".otel-collector-ext-demo"  # says a folder holds only what a demo wrote


def start_fresh(root: Path) -> str | None:
    """Empty `root` if an earlier demo wrote it (its marker is there); refuse a folder with
    other content, which the demo must neither delete nor mix its rows into."""
    if root.exists() and not root.is_dir():
        raise SystemExit(f"otel-collector-ext demo: {root} is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise SystemExit(f"otel-collector-ext demo: {root} is not empty and was not "
                             "written by the demo; give an empty or new folder with --dir")
        shutil.rmtree(root)
        note = f"Removed the previous demo's data in {root}: starting fresh."
    else:
        note = None
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by `otel-collector-ext demo`; a new demo empties this "
                               "folder\n")
    return note


def cli_command() -> str:
    """How to run the CLI from a new shell: its name when on PATH, else its path."""
    beside = Path(sys.executable).parent / "otel-collector-ext"
    found = shutil.which("otel-collector-ext")
    if found and Path(found).resolve() == beside.resolve():
        return "otel-collector-ext"
    if not beside.exists():
        return f"{sys.executable} -m otel_collector_ext"
    return _shown(beside)


def _shown(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def run(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    note = start_fresh(root)
    if note:
        print(note)
    oce.configure(
        {
            "endpoint": "credit-endpoint",
            "deployment": "blue",
            "model_version": "3",
            "data_collector": {
                "collections": {
                    "model_inputs": {"enabled": "True"},
                    "model_outputs": {"enabled": "True"},
                },
                "rolling_rate": "hour",
            },
            "exporter": {"type": "avro", "destination": str(root)},
        }
    )
    rng = np.random.default_rng(7)
    inputs, outputs = oce.Collector(name="model_inputs"), oce.Collector(name="model_outputs")
    now = time.time()
    started = time.perf_counter()
    drift_from = args.requests * 2 // 3 if args.drift else args.requests
    for i in range(args.requests):
        features = synthetic_features(rng, drifted=i >= drift_from)
        # Event times spread over the last hours, so several hourly partitions appear.
        when = now - (args.requests - i) * (args.hours * 3600 / args.requests)
        context = inputs.collect(features, oce.BasicCorrelationContext(timestamp=when))
        outputs.collect(score(features), context)
    oce.flush()
    elapsed = time.perf_counter() - started
    stats = oce.stats()
    oce.shutdown()

    files = sorted(root.rglob("*.avro"))
    print(f"Scored {args.requests} requests in {elapsed:.1f} s; "
          f"{len(files)} Avro files under {root}")
    per_hour: Counter[tuple[str, str]] = Counter()
    frames = {}
    for collection in ("model_inputs", "model_outputs"):
        frame = oce.load(str(root), endpoint="credit-endpoint", deployment="blue",
                         collection=collection)
        frames[collection] = frame
        for hour, n in frame["_time"].dt.strftime("%Y-%m-%d %H:00").value_counts().items():
            per_hour[(collection, hour)] += n
    print("\nRows per collection and hour (UTC):")
    for (collection, hour), n in sorted(per_hour.items()):
        print(f"  {collection:<14} {hour}  {n:>6}")
    print("\nFiles:")
    for f in files[:8]:
        print(f"  {f.relative_to(root)}  ({f.stat().st_size:,} bytes)")
    if len(files) > 8:
        print(f"  … and {len(files) - 8} more")
    joined = frames["model_inputs"].merge(
        frames["model_outputs"][["_correlation_id", "_row", "probability", "approved"]],
        on=["_correlation_id", "_row"],
    )
    print("\nInputs joined to outputs by correlation id (first rows):")
    cols = ["_correlation_id", "_time", "age", "debt_ratio", "region", "probability", "approved"]
    with pd.option_context("display.width", 140, "display.max_columns", 10):
        print(joined[cols].head(5).to_string(index=False))
    print(f"\n{len(frames['model_inputs'])} input rows, {len(frames['model_outputs'])} output rows, "
          f"{len(joined)} joined")
    print("Counters:", {k: v for k, v in stats.items() if v})
    cli = cli_command()
    first = now - args.hours * 3600
    # The last third (drifted unless --no-drift) against the two thirds before it.
    split = first + (now - first) * (args.requests * 2 // 3) / args.requests

    def utc(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))

    print(f"\nLook around (each command works as printed, from this folder):\n"
          f"  {cli} ls -d {args.dir}\n"
          f"  {cli} report -d {args.dir} -e credit-endpoint -p blue -o report.html\n"
          f"  {cli} monitor -d {args.dir} -e credit-endpoint -p blue "
          f"--reference-start {utc(first - 1)} --reference-end {utc(split)} "
          f"--start {utc(split)} --end {utc(now + 1)} --report monitor.html")
    if args.drift:
        print("  (monitor exits 1 when a threshold is breached, as here: the last third of "
              "the requests drifted)")
    activate = Path(sys.executable).parent / "activate"
    if cli != "otel-collector-ext" and activate.is_file():
        print(f"or put the CLI on PATH first: source {_shown(activate)}")
    return 0 if len(joined) == len(frames["model_inputs"]) > 0 else 1
