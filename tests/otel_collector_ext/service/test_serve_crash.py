"""`serve` SIGKILLed at random moments while HTTP and gRPC clients send unique ids: every id it
acknowledged is stored exactly once, with a local folder and with Azure Blob (Azurite) behind it.

The clients are separate processes that never resend an id (tests/support/send_ids.py), so an id
stored twice, or acknowledged and missing, is the service's fault."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro

from tests.conftest import ROOT, python_env
from tests.support.service_process import ServeProcess

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name, wait_for

CYCLES = 8


def clients(serve: ServeProcess, workdir: Path, stop: Path) -> list[tuple[subprocess.Popen[str], Path]]:
    out = []
    for mode, port, n in (("http", serve.http[1], 0), ("grpc", serve.grpc[1], 0),
                          ("http", serve.http[1], 1), ("grpc", serve.grpc[1], 1)):
        prefix = f"{mode}{n}"
        path = workdir / f"{prefix}.ids"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.send_ids", "--mode", mode, "--port", str(port),
             "--prefix", prefix, "--out", str(path), "--stop", str(stop)],
            cwd=ROOT, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out.append((process, path))
    return out


def acknowledged(paths: Iterable[Path]) -> tuple[set[str], set[str]]:
    acked, refused = set(), set()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            mark, _, ident = line.partition(" ")
            (acked if mark == "A" else refused).add(ident)
    return acked, refused


def ids_in(files: Iterable[bytes]) -> Counter[str]:
    found: Counter[str] = Counter()
    for data in files:
        for row in fastavro.reader(io.BytesIO(data)):
            found[row["_correlation_id"]] += 1
    return found


def run_crashes(tmp_path: Path, destination: str, stored: Callable[[], Iterable[bytes]],
                poll: Callable[..., Any], exporter: dict[str, Any] | None = None) -> None:
    serve = ServeProcess(tmp_path, destination, exporter=exporter,
                         wal={"directory": str(tmp_path / "wal")},
                         batch={"timeout": "50ms", "send_batch_size": 256})
    stop = tmp_path / "stop"
    rng = random.Random(10)
    senders: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        serve.wait_ready()
        senders = clients(serve, tmp_path, stop)
        paths = [path for _, path in senders]
        for cycle in range(CYCLES):
            # A random amount of acknowledged traffic since the last start, then SIGKILL.
            before = len(acknowledged(paths)[0])
            target = before + rng.randint(100, 1500)
            poll(lambda target=target: len(acknowledged(paths)[0]) >= target, timeout=60,
                 message=f"acknowledged ids in cycle {cycle}")
            serve.kill()
            serve.restart()
            serve.wait_ready()
        stop.touch()
        for process, _ in senders:
            process.communicate(timeout=60)
        assert serve.stop() == 0, serve.log()
    finally:
        stop.touch()
        for process, _ in senders:
            if process.poll() is None:
                process.kill()
        serve.kill()
    acked, refused = acknowledged(path for _, path in senders)
    found = ids_in(stored())
    lost = acked - set(found)
    dup = {i: n for i, n in found.items() if n > 1}
    print(f"{destination}: {CYCLES} SIGKILLs, acknowledged={len(acked)} refused={len(refused)} "
          f"stored={sum(found.values())} lost={len(lost)} dup={len(dup)}")
    assert "replaying" in serve.log()  # the kills did catch acknowledged, unstored records
    assert len(acked) > CYCLES * 100
    assert not lost, sorted(lost)[:10]
    assert not dup, sorted(dup.items())[:10]
    assert set(found) <= acked | refused  # nothing stored that was never sent


def test_sigkilled_serve_stores_every_acknowledged_id_once_local(tmp_path: Path, wait_for) -> None:
    store = tmp_path / "store"
    run_crashes(tmp_path, str(store),
                lambda: [p.read_bytes() for p in sorted(store.rglob("*.avro"))], wait_for)


def test_sigkilled_serve_stores_every_acknowledged_id_once_blob(
        tmp_path: Path, azurite: Azurite, container_name: str, wait_for) -> None:
    container = azurite.service().get_container_client(container_name)

    def stored() -> list[bytes]:
        return [container.download_blob(b.name).readall() for b in container.list_blobs()
                if b.name.endswith(".avro")]

    run_crashes(tmp_path, f"az://{container_name}/data", stored, wait_for, exporter={
        "storage_options": {"connection_string": azurite.connection_string,
                            "spool_dir": str(tmp_path / "spool"), "close_timeout": 60}})

