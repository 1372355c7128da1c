"""The performance goals the benchmarks check, and how they print them.

Each goal compares one of our figures with its peer (or limit) measured in the same run:
the ratio ours / peer must stay at or under `at_most`, or at or over `at_least`. Every
benchmark prints its goals with the ratio and whether it is met, and with `--json` hands
them to `bench/run_all.py`, which writes the README's Performance table from one run.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Goal:
    """One goal: our figure, the peer's from the same run, and the bound on their ratio."""

    name: str  # what is measured, in words
    ours: float
    peer: float
    peer_name: str  # what we compare with
    unit: str  # of `ours` and `peer`
    at_most: float | None = None  # ratio bound when lower is better
    at_least: float | None = None  # ratio bound when higher is better
    source: str = ""  # the benchmark that measured it

    @property
    def ratio(self) -> float:
        return self.ours / self.peer if self.peer else float("inf")

    @property
    def met(self) -> bool:
        if self.at_most is not None and not self.ratio <= self.at_most:
            return False
        return self.at_least is None or self.ratio >= self.at_least

    @property
    def bound(self) -> str:
        if self.at_most is not None:
            return f"≤ {self.at_most:g}×"
        return f"≥ {self.at_least:g}×"

    def line(self) -> str:
        verdict = "met" if self.met else "NOT met"
        return (f"  goal: {self.name}: {_figure(self.ours, self.unit)} vs {self.peer_name} "
                f"{_figure(self.peer, self.unit)} = {self.ratio:.2f}× (goal {self.bound}): "
                f"{verdict}")

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "met": self.met}


def _figure(value: float, unit: str) -> str:
    if unit == "µs":
        return f"{value:,.1f} µs"
    return f"{value:,.0f} {unit}".rstrip()


def print_goals(goals: Iterable[Goal]) -> None:
    print("\nGoals (ratio ours / peer, same run):")
    for goal in goals:
        print(goal.line())


def from_dicts(items: Iterable[dict[str, Any]]) -> list[Goal]:
    fields = {f.name for f in dataclasses.fields(Goal)}
    return [Goal(**{k: v for k, v in item.items() if k in fields}) for item in items]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] if ordered else float("nan")
