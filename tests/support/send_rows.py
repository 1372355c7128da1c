"""A scoring process for the schema tests: collects planned dict rows, flushing where told.

    python -m tests.support.send_rows PLAN.json

PLAN: ``{"exporter": {...}, "runs": [{"deployment", "batch", "rows", "flush_after"}]}``,
optionally with ``"instance_id"`` (default ``r``), ``"collection"`` (default ``rows``)
and ``"schema"`` (the Collector's declared schema). Each run configures the pipeline anew
(batch size `batch`), collects `rows` to the collection (row i with id ``{instance_id}-i`` and a fixed event time),
flushes after the rows listed in `flush_after`, and shuts down. Prints the counters;
exits non-zero if anything was lost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import otel_collector_ext as oce
from otel_collector_ext import BasicCorrelationContext, Collector

T0_SECONDS = 1_764_000_000


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    instance = plan.get("instance_id", "r")
    for run in plan["runs"]:
        oce.configure({"endpoint": "ep", "deployment": run["deployment"], "instance_id": instance,
                       "exporter": plan["exporter"],
                       "batch": {"schedule_delay_millis": 5000,
                                 "max_export_batch_size": run["batch"]}})
        collector = Collector(name=plan.get("collection", "rows"), schema=plan.get("schema"))
        flush_after = set(run["flush_after"])
        for i, row in enumerate(run["rows"]):
            collector.collect(row, BasicCorrelationContext(id=f"{instance}-{i:04d}",
                                                           timestamp=T0_SECONDS + i / 1000))
            if i in flush_after and not oce.flush(60_000):
                return 1
        if not oce.flush(60_000):
            return 1
        oce.shutdown()
    counts = oce.stats()
    lost = sum(v for k, v in counts.items() if k.startswith("records.dropped"))
    print(json.dumps({"runs": len(plan["runs"]), "lost": lost, "stats": counts}))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
