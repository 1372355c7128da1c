"""The conservation identity of the counters (README, "Errors, drops and counters").

Every record the queue accepted (`records.collected`) is, at any moment, stored
(`exporter.records.written`), dropped after queuing with a reason (the exporter's
`records.dropped`, the queue's `export_failed`), skipped as not inference data
(`exporter.records.skipped`), or still in flight (`records.in_flight`).
"""

from __future__ import annotations

from collections.abc import Mapping


def total(stats: Mapping[str, int], name: str, **attributes: str) -> int:
    """The sum of the series `name{...}` of a stats() dict that carry `attributes`."""
    out = 0
    for key, value in stats.items():
        base, _, labels = key.partition("{")
        if base != name:
            continue
        pairs = set(labels.rstrip("}").split(",")) if labels else set()
        if all(f"{k}={v}" in pairs for k, v in attributes.items()):
            out += value
    return out


def assert_conserved(stats: Mapping[str, int]) -> dict[str, int]:
    """Assert collected = stored + dropped by reason + in flight; return the terms."""
    terms = {
        "collected": total(stats, "records.collected"),
        "stored": total(stats, "exporter.records.written"),
        "dropped": total(stats, "exporter.records.dropped")
        + total(stats, "records.dropped", reason="export_failed"),
        "skipped": total(stats, "exporter.records.skipped"),
        "in_flight": stats.get("records.in_flight", 0),
    }
    accounted = terms["stored"] + terms["dropped"] + terms["skipped"] + terms["in_flight"]
    assert terms["collected"] == accounted, terms
    return terms
