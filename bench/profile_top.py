"""Summarise a py-spy profile: where the time goes, per thread, as a markdown list.

Record a benchmark's processes with py-spy (sampling, every thread, subprocesses too)::

    py-spy record --subprocesses --format raw -o /tmp/collect.raw -- \
        python bench/bench_collect.py --quick --no-peer
    python bench/profile_top.py /tmp/collect.raw --top 12

The raw format is one collapsed stack per line, ``frame;frame;...;leaf count``. Printed
for each process (the benchmark's own driver, the scoring processes, servers): the share
of busy samples (waits left out) of each thread kind (main, our export thread, other),
the functions with the most samples on the stack (inclusive), and the leaves (exclusive:
where the CPU actually is). Only this project's functions and their direct callees are
listed inclusively, so the lists read as "what our code spends on".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_OURS = ("otel_collector_ext/", "exporters/")


_PROCESS = re.compile(r'process (\d+):"(.*?)"(?=;| \d+\n)', re.S)
_IDLE = ("Condition.wait", "Event.wait", "select (selectors.py)", "_worker (concurrent",
         "readinto (socket.py)", "sleep", "accept (socket.py)", "Thread.join")


def parse(path: Path) -> tuple[list[tuple[list[str], int]], dict[str, str]]:
    """(frames from the root to the leaf, as 'function (file)', samples) for each stack, and
    each process frame's command line. With --subprocesses py-spy roots every stack in a
    'process PID:"command line"' frame, whose command line may span lines (python -c)."""
    commands: dict[str, str] = {}

    def squash(m: re.Match[str]) -> str:
        commands[f"process {m[1]}"] = " ".join(m[2].split())[:100]
        return f"process {m[1]}"

    text = _PROCESS.sub(squash, path.read_text())
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame)
            frames.append(f"{m['func']} ({_short(m['file'])})" if m else frame)
        stacks.append((frames, int(count)))
    return stacks, commands


def _short(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    return re.sub(r"^.*/lib/python3[.\d]*/", "", file)


def thread_kind(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "BatchingProcessor._run" in joined or "DurableQueue._run" in joined:
        return "export thread"
    if any(f.startswith("Thread._bootstrap") for f in frames[:2]):
        return "other threads"
    return "main thread"


def summarise(stacks: list[tuple[list[str], int]], top: int) -> str:
    """Thread shares, then our functions (inclusive) and the leaves (exclusive), as shares
    of the busy samples (waits left out)."""
    busy = [(f, n) for f, n in stacks if f and not any(i in f[-1] for i in _IDLE)]
    total = sum(n for _, n in busy)
    if not total:
        return "(no busy samples)"
    kinds: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, n in busy:
        kinds[thread_kind(frames)] += n
        leaves[frames[-1]] += n
        seen = set()
        for i, frame in enumerate(frames):
            ours = any(p in frame for p in _OURS)
            caller_ours = i > 0 and any(p in frames[i - 1] for p in _OURS)
            if (ours or caller_ours) and frame not in seen:
                seen.add(frame)
                inclusive[frame] += n
    lines = [f"{total:,} busy samples: " + ", ".join(
        f"{kind} {n / total:.0%}" for kind, n in kinds.most_common())]
    lines.append("\nInclusive (our functions and what they call directly):")
    lines += [f"- {n / total:5.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("\nExclusive (leaves):")
    lines += [f"- {n / total:5.1%}  {f}" for f, n in leaves.most_common(top)]
    return "\n".join(lines)


def by_process(stacks: list[tuple[list[str], int]], commands: dict[str, str]
               ) -> dict[str, list[tuple[list[str], int]]]:
    out: dict[str, list[tuple[list[str], int]]] = {}
    for frames, n in stacks:
        # A child's stacks sit under its parents' process frames: the innermost one names it.
        at = max((i for i, f in enumerate(frames) if f in commands), default=None)
        if at is None:
            label = "the profiled process"
        else:
            label = f"{frames[at]}: {commands[frames[at]]}"
            frames = frames[at + 1:]
        out.setdefault(label, []).append((frames, n))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--process", help="only processes whose command line holds this")
    parser.add_argument("--min-share", type=float, default=0.05,
                        help="leave out processes with a smaller share of the samples")
    args = parser.parse_args()
    stacks, commands = parse(args.profile)
    processes = by_process(stacks, commands)
    grand = sum(n for _, n in stacks) or 1
    for label, own in sorted(processes.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        share = sum(n for _, n in own) / grand
        if (args.process and args.process not in label) or share < args.min_share:
            continue
        print(f"### {label} ({share:.0%} of all samples)\n{summarise(own, args.top)}\n")


if __name__ == "__main__":
    main()
