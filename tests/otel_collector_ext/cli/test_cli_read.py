"""The reading commands: ls, read, stats (report has its own module), errors and progress."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from otel_collector_ext.cli.main import main
from tests.conftest import ROOT, python_env
from tests.support.readback_data import DataSet

pytest_plugins = ["tests.support.readback_fixtures"]

D2 = datetime(2026, 3, 2, tzinfo=UTC)
SCOPE = ["-e", "ep", "-p", "blue"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own exits
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def direct_counts(root: Path) -> dict[str, dict[str, int]]:
    """Files, bytes and rows per ep/deployment/collection, counted with fastavro directly."""
    import fastavro

    out: dict[str, dict[str, int]] = {}
    for path in root.rglob("*.avro"):
        parts = path.relative_to(root).parts
        entry = out.setdefault("/".join(parts[:3]), {"files": 0, "bytes": 0, "rows": 0})
        with open(path, "rb") as f:
            entry["rows"] += sum(1 for _ in fastavro.reader(f))
        entry["files"] += 1
        entry["bytes"] += path.stat().st_size
    return out


def test_ls_figures_match_a_direct_count(collected: DataSet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls", "-d", str(collected.root), "--rows", "--json")
    assert code == 0 and err == ""
    got = {f"{e['endpoint']}/{e['deployment']}/{e['collection']}":
           {k: e[k] for k in ("files", "bytes", "rows")} for e in json.loads(out)}
    assert got == direct_counts(collected.root)
    code, out, _ = cli(capsys, "ls", "-d", str(collected.root))
    assert code == 0 and "model_inputs" in out and "green" in out and "ROWS" not in out

    code, out, _ = cli(capsys, "ls", "-d", str(collected.root), *SCOPE, "-c", "model_inputs",
                       "--json", "--start", "2026-03-02", "--end", "2026-03-02T03:00")
    partitions = json.loads(out)
    assert [p["partition"] for p in partitions] == [
        f"ep/blue/model_inputs/2026/03/02/0{h}" for h in range(3)]
    assert sum(p["rows"] for p in partitions) == len(collected.input_rows(D2, D2 + timedelta(hours=3)))
    for p in partitions:
        files = list((collected.root / p["partition"]).glob("*.avro"))
        assert p["files"] == len(files) and p["bytes"] == sum(f.stat().st_size for f in files)
    code, out, _ = cli(capsys, "ls", "-d", str(collected.root), *SCOPE, "-c", "model_inputs")
    assert code == 0 and out.splitlines()[-1].split()[2] == f"{len(collected.input_rows()):,}"


def test_read_writes_csv_jsonl_and_parquet(collected: DataSet, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    lo, hi = "2026-03-02T00:00", "2026-03-02T03:00"
    expected = sorted(x for _, _, x in collected.input_rows(D2, D2 + timedelta(hours=3)))
    code, out, _ = cli(capsys, "read", "-d", str(collected.root), *SCOPE, "-c", "model_inputs",
                       "--start", lo, "--end", hi)
    assert code == 0
    csv = pd.read_csv(io.StringIO(out))
    assert sorted(csv["x"]) == expected and "segment" in csv.columns
    jsonl = tmp_path / "slice.jsonl"
    code, _, err = cli(capsys, "read", "-d", str(collected.root), *SCOPE, "-c", "request",
                       "--start", lo, "--end", hi, "-o", str(jsonl))
    assert code == 0 and "wrote" in err
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 9 and lines[0]["body"].startswith('{"x"')  # UTF-8 bodies as text
    assert lines[0]["headers"] == {"user-agent": "tests"}
    parquet = tmp_path / "slice.parquet"
    code, _, _ = cli(capsys, "read", "-d", str(collected.root), *SCOPE, "-c", "model_inputs",
                     "-o", str(parquet))
    assert code == 0
    assert sorted(pd.read_parquet(parquet)["x"]) == sorted(x for _, _, x in collected.input_rows())


def test_read_join_with_columns_and_limit(collected: DataSet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "read", "-d", str(collected.root), *SCOPE, "--join",
                       "--columns", "x,y,response_status", "-n", "5", "-f", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 5 and list(rows[0]) == ["x", "y", "response_status"]
    assert all(r["y"] == r["x"] * 0.5 for r in rows)


def test_stats_figures_match_a_direct_count(collected: DataSet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "stats", "-d", str(collected.root), *SCOPE, "--json")
    assert code == 0
    got = json.loads(out)
    assert set(got["collections"]) == {"model_inputs", "model_outputs", "request", "response"}
    per_hour: dict[str, int] = {}
    for c in collected.calls:
        hour = c.when.replace(minute=0, second=0, microsecond=0).isoformat()
        per_hour[hour] = per_hour.get(hour, 0) + len(c.inputs)
    assert {h["hour"]: h["model_inputs"] for h in got["rows_per_hour"]} == per_hour
    assert all(h["request"] == 3 for h in got["rows_per_hour"])
    columns = {c["name"]: c for c in got["collections"]["model_inputs"]["columns"]}
    n = len(collected.input_rows())
    segment_nulls = sum(len(c.inputs) for c in collected.calls if "segment" not in c.inputs)
    assert columns["segment"]["nulls"] == segment_nulls and columns["segment"]["count"] == n
    assert columns["segment"]["null_rate"] == pytest.approx(segment_nulls / n)
    xs = [x for _, _, x in collected.input_rows()]
    assert columns["x"]["mean"] == pytest.approx(sum(xs) / n)
    assert columns["x"]["min"] == min(xs) and columns["x"]["max"] == max(xs)
    assert columns["city"]["distinct"] == 3 and columns["city"]["kind"] == "categorical"
    code, out, _ = cli(capsys, "stats", "-d", str(collected.root), *SCOPE, "-c", "response")
    assert code == 0 and "status" in out and "Rows per hour" in out


BAD = [
    (["read", *SCOPE, "-c", "model_inputs"], "no destination"),
    (["read", "-d", "{root}", *SCOPE, "-c", "no_such"], "no collection 'no_such'"),
    (["stats", "-d", "{root}", "-e", "nope", "-p", "blue"], "no collected data"),
    (["read", "-d", "{root}", *SCOPE, "-c", "model_inputs", "--start", "2026-02-30"], "invalid --start"),
    (["read", "-d", "{root}", *SCOPE, "-c", "model_inputs", "--start", "now", "--end", "1d ago"],
     "is not before"),
    (["ls", "-d", "{root}/missing"], "destination {root}/missing does not exist"),
    (["ls", "-d", "{root}/ep/blue/model_inputs/2026/03/02/00/{first}"], "is not a folder"),
    # A wrong name is answered with the names that exist at that level.
    (["ls", "-d", "{root}", "-e", "nope"], "endpoints there: ep"),
    (["stats", "-d", "{root}", "-e", "ep", "-p", "nope"], "deployments of 'ep': blue, green"),
    (["report", "-d", "{root}", "-e", "nope", "-p", "blue"], "; endpoints there: ep"),
    (["read", "-d", "{root}", *SCOPE, "-c", "nope"], "collections of 'ep'/'blue': model_inputs"),
    (["read", "-d", "{root}", *SCOPE, "-c", "model_inputs", "-o", "slice.xlsx"],
     "cannot tell the format of slice.xlsx"),
    (["report", "-d", "{root}", *SCOPE, "--split", "2099-01-01", "-o", "-"],
     "is outside the data read"),
    (["report", "-d", "{root}", *SCOPE, "--split", "2000-01-01", "-o", "-"],
     "a window would be empty"),
    (["ls", "-d", "{root}", "-c", "model_inputs"], "needs --endpoint"),
    (["read", "-d", "{root}", "-e", "ep", "-c", "model_inputs"], "required: -p/--deployment"),
    (["read", "-d", "{root}", *SCOPE, "-c", "model_inputs", "--columns", "zz"], "no column(s) zz"),
    (["read", "-d", "{root}", *SCOPE, "-c", "model_inputs", "-f", "parquet"], "give --output"),
    (["report", "-d", "{root}", *SCOPE, "--baseline", "2026-03-01"], "START/END"),
    (["ls", "-d", "ftp://x/y"], "unsupported destination scheme"),
    (["ls", "-d", "{root}", "--connection-string", "x"], "Blob destinations only"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_exit_2(collected: DataSet, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                          message: str) -> None:
    monkeypatch.delenv("OTEL_COLLECTOR_EXT_DESTINATION", raising=False)
    first = next((collected.root / "ep/blue/model_inputs/2026/03/02/00").glob("*.avro")).name
    argv = [a.replace("{root}", str(collected.root)).replace("{first}", first) for a in argv]
    message = message.replace("{root}", str(collected.root))
    code, out, err = cli(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_parquet_without_pyarrow_says_what_to_install(collected: DataSet, tmp_path: Path) -> None:
    # A real CLI process in which pyarrow cannot be imported (the demo's install has none).
    code = ("import sys; sys.modules['pyarrow'] = None; from otel_collector_ext.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    target = tmp_path / "slice.parquet"
    done = subprocess.run(
        [sys.executable, "-c", code, "read", "-d", str(collected.root), *SCOPE, "-c",
         "model_inputs", "-o", str(target)],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'otel-collector-ext[parquet]'" in done.stderr
    assert done.stderr.count("\n") == 1 and not target.exists()


def _run_cli(args: list[str], *, tty: bool) -> tuple[int, str]:
    """Run the CLI in a child process; stderr on a pseudo-terminal or a pipe. Returns stderr."""
    cmd = [sys.executable, "-m", "otel_collector_ext", *args]
    if not tty:
        p = subprocess.run(cmd, cwd=ROOT, env=python_env(), capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stderr
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0x0; give it a real terminal's size, as a person's would have.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen(cmd, cwd=ROOT, env=python_env(), stdout=subprocess.DEVNULL,
                         stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return p.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(collected: DataSet) -> None:
    args = ["read", "-d", str(collected.root), *SCOPE, "-c", "model_inputs", "-f", "csv"]
    code, err = _run_cli(args, tty=True)
    assert code == 0 and "model_inputs:" in err and "%|" in err, err
    code, err = _run_cli(args, tty=False)
    assert code == 0 and err == ""
