"""Which features `monitor` flags, beside Evidently's data drift report, on one data set.

The data set is the demo's (`otel-collector-ext demo`): credit features and a
stand-in model's outputs over three hours, the last of which drifts (debt_ratio
and region; the predictions follow). The first two hours are the reference, the
last hour the current window. `monitor` runs here; Evidently runs in another
Python (it is no dependency of this project, and needs pandas < 3), given with
``--evidently-python``, on the same rows exported as Parquet. Both verdicts are
printed side by side; the last line is them as JSON.

Usage:
    python -m venv /tmp/ev && /tmp/ev/bin/pip install evidently "pandas<3" pyarrow
    python bench/compare_evidently.py --evidently-python /tmp/ev/bin/python
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import otel_collector_ext as oce  # noqa: E402
from otel_collector_ext.cli.main import main as cli  # noqa: E402
from otel_collector_ext.monitoring import monitor  # noqa: E402

ENDPOINT, DEPLOYMENT = "credit-endpoint", "blue"
FEATURES = ["age", "debt_ratio", "tenure_years", "region", "probability", "approved"]

EVIDENTLY = """
import json, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
result = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur).dict()
out = {}
for m in result["metrics"]:
    config = m["config"]
    if config.get("type", "").endswith("ValueDrift"):
        out[config["column"]] = {"method": config["method"], "value": m["value"],
                                 "threshold": config["threshold"]}
import evidently
print(json.dumps({"version": evidently.__version__, "columns": out}))
"""


def evidently_drifted(entry: dict) -> bool:
    """Evidently's rule: a p-value test drifts below its threshold, a distance at or above."""
    if not entry:
        return False
    if "p_value" in entry["method"] or "test" in entry["method"].lower():
        return entry["value"] < entry["threshold"]
    return entry["value"] >= entry["threshold"]


def frames(root: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    joined = oce.join_inputs_outputs(str(root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                                     start=start, end=end, request=None, response=None)
    return joined[FEATURES]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", required=True,
                        help="a Python with evidently installed (not this project's)")
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        with contextlib.redirect_stdout(io.StringIO()):  # the demo's own report
            if cli(["demo", "--dir", str(root), "--requests", str(args.requests)]) != 0:
                return 1
        every = oce.load(str(root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                         collection="model_inputs")["_time"]
        first, last = every.min(), every.max() + timedelta(microseconds=1)
        split = first + (last - first) * 2 / 3  # where the demo's drift starts
        result = monitor(str(root), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                         reference_start=first, reference_end=split, start=split, end=last)
        ours: dict[str, dict] = {}
        for s in result.signals:
            if s.signal in ("data_drift", "prediction_drift"):
                entry = ours.setdefault(s.feature, {"drifted": False, "metrics": {}})
                entry["metrics"][s.metric] = s.value
                entry["drifted"] |= s.status == "breached"
        ref_path, cur_path = Path(tmp) / "reference.parquet", Path(tmp) / "current.parquet"
        frames(root, first, split).to_parquet(ref_path)
        frames(root, split, last).to_parquet(cur_path)
        run = subprocess.run([args.evidently_python, "-c", EVIDENTLY, str(ref_path),
                              str(cur_path)], capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return 1
        theirs = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{'feature':<14} {'monitor':<9} {'evidently':<10} evidently's method and value")
    for feature in FEATURES:
        e = theirs["columns"].get(feature, {})
        e["drifted"] = evidently_drifted(e)
        print(f"{feature:<14} {'drift' if ours[feature]['drifted'] else 'ok':<9} "
              f"{'drift' if e['drifted'] else 'ok':<10} {e.get('method')} {e.get('value', 0):.4g}"
              f" (threshold {e.get('threshold')})")
    print(json.dumps({"monitor": ours, "evidently": theirs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
