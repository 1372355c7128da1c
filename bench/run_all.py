"""Run the goal benchmarks once and write the README's goal table from that one run.

Runs bench_collect.py, bench_middleware.py and bench_otlp.py one after another (each
with --json), prints every goal with its peer, ratio and whether it is met, and
replaces the table between the markers in README.md (or --readme):

    <!-- performance-goals:start -->  ...  <!-- performance-goals:end -->

Usage: python bench/run_all.py [--quick] [--no-write] [--only collect middleware otlp]
The full results go to --out (default: bench-results.json in the current folder);
`--from FILE` writes the tables again from such a file, without measuring.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.goals import Goal, from_dicts, print_goals  # noqa: E402

START, END = "<!-- performance-goals:start -->", "<!-- performance-goals:end -->"
BENCHES = {
    "collect": (["bench/bench_collect.py"], ["--quick"]),
    "middleware": (["bench/bench_middleware.py"], ["--rounds", "3", "--seconds", "2"]),
    "otlp": (["bench/bench_otlp.py"], ["--quick"]),
}


def run(name: str, quick: bool) -> dict[str, Any]:
    script, quick_args = BENCHES[name]
    command = [sys.executable, *script, "--json", *(quick_args if quick else [])]
    print(f"$ {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    sys.stdout.write(done.stdout if name != "middleware" else "")
    if done.returncode:
        raise SystemExit(f"{script[0]} failed:\n{done.stderr[-4000:]}")
    return _last_json(done.stdout)


def _last_json(text: str) -> dict[str, Any]:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        line = next(ln for ln in reversed(text.splitlines()) if ln.startswith("{"))
        return json.loads(line)


def _value(goal: Goal) -> str:
    if goal.unit == "µs":
        return f"{goal.ours:,.1f} µs"
    return f"{goal.ours:,.0f} {goal.unit}"


def _peer(goal: Goal) -> str:
    figure = f"{goal.peer:,.1f} µs" if goal.unit == "µs" else f"{goal.peer:,.0f} {goal.unit}"
    return f"{goal.peer_name}: {figure}"


def table(goals: list[Goal], when: str) -> str:
    lines = [
        f"Measured by `python bench/run_all.py`, one run, {when} "
        f"({os.cpu_count()} CPUs, shared; each figure beside its peer from the same run).",
        "",
        "| goal | ours | peer, same run | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for g in goals:
        lines.append(f"| {g.name} (`{g.source}`) | {_value(g)} | {_peer(g)} | {g.ratio:.2f}× "
                     f"| {g.bound} | {'**met**' if g.met else 'not met'} |")
    return "\n".join(lines)


def collect_table(rows: list[dict[str, Any]]) -> str:
    """bench_collect.py's figures, system by system, from the same run."""
    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        return fmt.format(row[key]) if key in row else "–"

    lines = ["| frames | system | collect() p50 | p99 | frames/s | rows/s | CPU per record | |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['rows']}-row | {r['system']} | {cell(r, 'p50_us', '{:.1f} µs')} "
            f"| {cell(r, 'p99_us', '{:,.0f} µs')} | {cell(r, 'frames_per_s', '{:,.0f}')} "
            f"| {cell(r, 'rows_per_s', '{:,.0f}')} | {cell(r, 'cpu_us_per_record', '{:,.1f} µs')} "
            f"| {r['note']} |")
    return "\n".join(lines)


def write_readme(readme: Path, text: str) -> None:
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme}: no {START} ... {END} markers")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", content))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick mode")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), default=list(BENCHES))
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit README")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--from", dest="source", type=Path,
                        help="a results file of an earlier run: write its tables, measure nothing")
    args = parser.parse_args()
    if args.source:
        results = json.loads(args.source.read_text())
    else:
        results = {name: run(name, args.quick) for name in args.only}
    goals = [g for r in results.values() if isinstance(r, dict)
             for g in from_dicts(r.get("goals", []))]
    print_goals(goals)
    when = results.setdefault("when", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    text = table(goals, when + (", quick mode" if args.quick else ""))
    if "collect" in results:
        text += ("\n\n`bench_collect.py` in the same run (frames of 8 float, 1 int and 1 string "
                 "column; collect() timed while the exporter converts and writes):\n\n"
                 + collect_table(results["collect"]["table"]))
    if not args.source:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n{text}\n\n(full results: {args.out})")
    if not args.no_write:
        write_readme(args.readme, text)
        print(f"{args.readme}: goal table replaced")


if __name__ == "__main__":
    main()
