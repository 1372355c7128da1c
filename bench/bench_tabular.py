"""Time exporters.avro.tabular.convert_frames against df.to_dict("records").

Run: python bench/bench_tabular.py  (prints µs per one-row frame and rows/s for 100-row frames)
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporters.avro.schema import Envelope  # noqa: E402
from exporters.avro.tabular import convert_frames, to_frame  # noqa: E402


def make_frame(i: int, rows: int) -> pd.DataFrame:
    r = np.arange(rows) + i
    return pd.DataFrame(
        {
            "age": r,
            "income": r * 1.5,
            "city": [f"city{v % 7}" for v in r],
            "member": r % 2 == 0,
            "visits": pd.array(r, dtype="Int64"),
            "seen": pd.to_datetime(1_700_000_000_000_000 + r, unit="us"),
            "segment": pd.Categorical([f"s{v % 3}" for v in r]),
            "note": [None] * rows,
            "score": r.astype(np.float32),
            "zip code": r.astype(np.int32),
        }
    )


def best(fn, make, repeat: int = 7) -> float:
    """Best time of fn(make()) over fresh inputs (pandas caches per-frame internals)."""
    times = []
    for _ in range(repeat):
        data = make()
        t0 = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    envs = [Envelope(f"id{i}", 1_700_000_000_000_000 + i, "v1") for i in range(512)]

    def small():
        return [make_frame(i, 1) for i in range(512)]

    def big():
        return [make_frame(i, 100) for i in range(8)]

    t_conv = best(lambda fs: convert_frames(fs, envs, "model_inputs"), small)
    t_dict = best(lambda fs: [f.to_dict("records") for f in fs], small)
    print(
        f"512 one-row 10-column frames: convert_frames {t_conv / 512 * 1e6:.1f} µs/frame, "
        f"to_dict('records') {t_dict / 512 * 1e6:.1f} µs/frame"
    )

    rows = 8 * 100
    t_conv = best(lambda fs: convert_frames(fs, envs[:8], "model_inputs"), big)
    t_dict = best(lambda fs: [f.to_dict("records") for f in fs], big)
    print(
        f"8 x 100-row 10-column frames: convert_frames {rows / t_conv:,.0f} rows/s, "
        f"to_dict('records') {rows / t_dict:,.0f} rows/s"
    )

    row = {"age": 3, "income": 1.5, "city": "x", "member": True, "visits": 4, "note": None,
           "score": 0.5, "zip": 75001, "segment": "s1", "weight": 2.0}  # fmt: skip

    def rows():
        return [dict(row, age=i) for i in range(512)]

    t_conv = best(
        lambda bodies: convert_frames([to_frame(b, "row") for b in bodies], envs, "model_inputs"),
        rows,
    )
    t_frame = best(lambda bodies: [to_frame(b, "row") for b in bodies], rows)
    print(
        f"512 dict rows (kind 'row'): to_frame {t_frame / 512 * 1e6:.1f} µs/row, "
        f"to_frame + convert_frames {t_conv / 512 * 1e6:.1f} µs/row"
    )

    try:
        import fastavro
    except ImportError:
        return
    batch = convert_frames(small(), envs, "model_inputs")
    parsed = fastavro.parse_schema(batch.schema)
    t_write = best(lambda rows: fastavro.writer(io.BytesIO(), parsed, rows), lambda: batch.rows)
    print(f"(for scale) fastavro.writer of those 512 records: {t_write / 512 * 1e6:.1f} µs/record")


if __name__ == "__main__":
    main()
