"""No function in the packages is longer than 60 lines (docstring and comments included).

A long function hides its steps; naming them as functions is how this code base
shows the flow (README, "Project layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 60


def long_functions(root: Path, base: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{path.relative_to(base)}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_in_the_packages_is_over_60_lines() -> None:
    offenders = long_functions(ROOT / "otel_collector_ext") + long_functions(ROOT / "exporters")
    assert offenders == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\nasync def long():\n{body}\n")
    assert long_functions(tmp_path, tmp_path) == [f"m.py:5 long: {MAX_LINES + 1} lines"]
