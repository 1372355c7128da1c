"""SpooledStorage: durable acceptance, exactly-once upload after crashes and outages, bounds.

Everything runs against Azurite (no mocked Blob client); crashes are real SIGKILLs
of child processes.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from exporters.storage import AppendConflict
from exporters.storage.blob import BlobStorage, RetryPolicy
from exporters.storage.spool import SpooledStorage, SpoolFull

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, azurite_factory, container_name, wait_for

ROOT = Path(__file__).resolve().parents[3]
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, deadline=5)


def blob(azurite: Azurite, container: str, **kw) -> BlobStorage:
    kw.setdefault("retry", FAST)
    return BlobStorage(f"az://{container}/sp", connection_string=azurite.connection_string, **kw)


def down_blob(container: str) -> BlobStorage:
    """A backend whose endpoint does not answer (nothing listens on the port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    return BlobStorage(f"az://{container}/sp", connection_string=conn, retry=FAST, connect_timeout=1)


def spool(inner: BlobStorage, directory: Path, **kw) -> SpooledStorage:
    kw.setdefault("max_backoff", 0.2)
    return SpooledStorage(inner, directory, **kw)


def stored(azurite: Azurite, container: str, path: str) -> bytes | None:
    client = azurite.service().get_blob_client(container, f"sp/{path}")
    return client.download_blob().readall() if client.exists() else None


def test_accepted_locally_then_uploaded(azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    s = spool(blob(azurite, container_name), tmp_path)
    assert s.append("a/x.avro", b"AAA", expected_size=0) == 3
    assert s.append("a/x.avro", b"BB", expected_size=3) == 5
    assert s.append("b/y.avro", b"C", expected_size=0) == 1
    s.put("a/body.bin", b"BODY")
    # What the caller's bookkeeping needs is right at once, uploaded or not.
    assert s.size("a/x.avro") == 5
    assert {o.path: o.size for o in s.list("a/")} == {"a/x.avro": 5, "a/body.bin": 4}
    assert s.read("a/x.avro") == b"AAABB"
    with pytest.raises(AppendConflict) as info:
        s.append("a/x.avro", b"late", expected_size=3)
    assert info.value.actual_size == 5
    s.flush()
    assert s.drain(20)
    assert stored(azurite, container_name, "a/x.avro") == b"AAABB"
    assert stored(azurite, container_name, "b/y.avro") == b"C"
    assert stored(azurite, container_name, "a/body.bin") == b"BODY"
    stats = s.stats()
    assert stats["uploaded_appends"] == 3 and stats["uploaded_puts"] == 1
    assert stats["uploaded_bytes"] == 10
    assert stats["spool_bytes"] == 0 and stats["spool_ops"] == 0
    assert stats["dropped_total"] == 0
    assert list(tmp_path.glob("slot-0/seg-*")) == []  # uploaded segments are deleted
    s.close()


def test_flush_returns_while_storage_is_down_and_restart_uploads(
        azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    s = spool(down_blob(container_name), tmp_path)
    for i in range(5):
        s.append("p/f.avro", f"<{i}>".encode(), expected_size=3 * i)
    started = time.monotonic()
    s.flush()
    assert time.monotonic() - started < 0.5  # flush does not wait for the network
    assert not s.drain(0.3)
    assert "cannot reach" in (s.stats()["last_error"] or "")
    s.close(timeout=0)  # the process goes away; the data stays in the spool
    # The next process (storage reachable again) uploads it, once.
    s2 = spool(blob(azurite, container_name), tmp_path)
    assert s2.size("p/f.avro") == 15
    assert s2.drain(20)
    assert stored(azurite, container_name, "p/f.avro") == b"<0><1><2><3><4>"
    s2.close()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_torn_tail_is_discarded_not_replayed(azurite: Azurite, container_name: str, tmp_path: Path,
                                             damage: str) -> None:
    s = spool(down_blob(container_name), tmp_path)
    s.append("t.avro", b"complete-1", expected_size=0)
    s.append("t.avro", b"complete-2", expected_size=10)
    s.append("t.avro", b"torn-by-a-kill", expected_size=20)
    s.close(timeout=0)
    (segment,) = tmp_path.glob("slot-0/seg-*.spool")
    with open(segment, "r+b") as f:
        if damage == "truncate":  # the last write was cut short
            f.truncate(segment.stat().st_size - 5)
        else:  # the last record's bytes are garbage
            f.seek(-8, os.SEEK_END)
            f.write(b"\xff" * 8)
    s2 = spool(blob(azurite, container_name), tmp_path)
    assert s2.size("t.avro") == 20
    assert s2.drain(20)
    assert stored(azurite, container_name, "t.avro") == b"complete-1complete-2"
    # New appends continue after the last complete one.
    assert s2.append("t.avro", b"-next", expected_size=20) == 25
    assert s2.drain(20)
    assert stored(azurite, container_name, "t.avro") == b"complete-1complete-2-next"
    s2.close()


@pytest.mark.parametrize("coalesce", [4 << 20, 1])
def test_replay_skips_what_is_already_uploaded(azurite: Azurite, container_name: str,
                                               tmp_path: Path, coalesce: int) -> None:
    # coalesce=1 uploads one operation per request, so the spool itself settles the
    # conflicts; otherwise one request covers them and the backend sees its bytes there.
    spool_dir = tmp_path / "spool"
    s = spool(down_blob(container_name), spool_dir)
    chunks = [f"[block {i}]".encode() for i in range(6)]
    size = 0
    for c in chunks:
        size = s.append("r.avro", c, expected_size=size)
    s.put("r-body.bin", b"BODY")
    s.close(timeout=0)
    backup = tmp_path / "backup"
    shutil.copytree(spool_dir, backup)
    # A crash after the first two appends reached Blob but before the spool recorded it.
    inner = blob(azurite, container_name)
    inner.append("r.avro", chunks[0] + chunks[1], expected_size=0)
    s2 = spool(blob(azurite, container_name), spool_dir, coalesce_bytes=coalesce)
    assert s2.drain(20)
    # Found already there: by the spool (object longer than the request's end) or by the
    # backend (object ends exactly there, bytes compared).
    assert s2.stats()["skipped_replayed"] == (1 if coalesce == 1 else 0)
    s2.close()
    whole = b"".join(chunks)
    assert stored(azurite, container_name, "r.avro") == whole
    client = azurite.service().get_blob_client(container_name, "sp/r.avro")
    blocks = client.get_blob_properties().append_blob_committed_block_count
    # A crash after everything was uploaded but before the segments were deleted.
    shutil.rmtree(spool_dir)
    shutil.copytree(backup, spool_dir)
    s3 = spool(blob(azurite, container_name), spool_dir, coalesce_bytes=coalesce)
    assert s3.drain(20)
    assert s3.stats()["skipped_replayed"] == (5 if coalesce == 1 else 0)
    assert s3.stats()["dropped_total"] == 0
    s3.close()
    assert stored(azurite, container_name, "r.avro") == whole
    assert stored(azurite, container_name, "r-body.bin") == b"BODY"
    # No block was appended twice.
    assert client.get_blob_properties().append_blob_committed_block_count == blocks


def test_full_spool_drops_newest_and_counts(container_name: str, tmp_path: Path) -> None:
    s = spool(down_blob(container_name), tmp_path, max_bytes=16 * 1024)
    size, accepted, refused = 0, 0, 0
    for _ in range(40):
        try:
            size = s.append("f.avro", b"x" * 1000, expected_size=size)
            accepted += 1
        except SpoolFull as e:
            assert e.transient and "full" in str(e)
            refused += 1
        assert s.stats()["spool_bytes"] <= 16 * 1024
    assert accepted >= 10 and refused == 40 - accepted
    stats = s.stats()
    assert stats["dropped_spool_full"] == refused
    assert s.size("f.avro") == accepted * 1000  # a refused append leaves the size unchanged
    with pytest.raises(SpoolFull, match="larger than the spool"):
        s.put("huge.bin", b"y" * 20_000)
    assert s.stats()["dropped_too_large"] == 1
    s.close(timeout=0)


def test_block_policy_waits_for_room(azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    s = spool(blob(azurite, container_name), tmp_path / "up", max_bytes=8 * 1024,
              full_policy="block", block_timeout=20)
    size = 0
    for i in range(60):  # 60 KB through an 8 KB spool: appends wait for uploads
        size = s.append("b.avro", bytes([65 + i % 26]) * 1000, expected_size=size)
    assert s.drain(20)
    assert s.stats()["dropped_total"] == 0
    assert len(stored(azurite, container_name, "b.avro") or b"") == 60_000
    s.close()
    down = spool(down_blob(container_name), tmp_path / "down", max_bytes=4 * 1024,
                 full_policy="block", block_timeout=0.3)
    down.append("c.avro", b"z" * 3000, expected_size=0)
    started = time.monotonic()
    with pytest.raises(SpoolFull):
        down.append("c.avro", b"z" * 3000, expected_size=3000)
    assert time.monotonic() - started >= 0.3
    assert down.stats()["dropped_spool_full"] == 1
    down.close(timeout=0)


def test_conflicting_object_is_not_overwritten(azurite: Azurite, container_name: str,
                                               tmp_path: Path, wait_for) -> None:
    azurite.service().get_container_client(container_name).create_container()
    other = azurite.service().get_blob_client(container_name, "sp/taken.avro")
    other.create_append_blob()
    other.append_block(b"someone else's data")
    s = spool(blob(azurite, container_name), tmp_path)
    s.append("taken.avro", b"mine", expected_size=0)  # accepted: the name looked new
    wait_for(lambda: s.stats()["dropped_conflict"] == 1, message="the conflict to be settled")
    assert stored(azurite, container_name, "taken.avro") == b"someone else's data"
    # The writer learns the real size on its next append and moves on.
    with pytest.raises(AppendConflict) as info:
        s.append("taken.avro", b"more", expected_size=4)
    assert info.value.actual_size == 19
    s.close()


def test_roll_mode_uploads_on_size_or_time_window(azurite: Azurite, container_name: str,
                                                  tmp_path: Path, wait_for) -> None:
    inner = blob(azurite, container_name, mode="roll")
    s = spool(inner, tmp_path, window_seconds=30, window_bytes=3000)
    size = 0
    for _ in range(2):
        size = s.append("w.avro", b"a" * 1000, expected_size=size)
    assert stored(azurite, container_name, "w.avro") is None  # the window is still open
    assert [o.path for o in s.list()] == ["w.avro"]  # visible to a restarted writer already
    size = s.append("w.avro", b"b" * 1000, expected_size=size)  # the size window closes
    wait_for(lambda: stored(azurite, container_name, "w.avro") == b"a" * 2000 + b"b" * 1000,
             message="the size window's upload")
    client = azurite.service().get_blob_client(container_name, "sp/w.avro")
    assert client.get_blob_properties().blob_type == "BlockBlob"
    assert len(client.get_block_list("committed")[0]) == 1  # one upload for the window
    s.close()
    timed = spool(blob(azurite, container_name, mode="roll"), tmp_path, window_seconds=0.3)
    timed.append("w.avro", b"c" * 10, expected_size=3000)
    assert stored(azurite, container_name, "w.avro") == b"a" * 2000 + b"b" * 1000
    wait_for(lambda: len(stored(azurite, container_name, "w.avro") or b"") == 3010,
             message="the time window's upload")
    assert len(client.get_block_list("committed")[0]) == 2
    timed.close()


def test_roll_window_holds_appends_until_it_closes(azurite: Azurite, container_name: str,
                                                   tmp_path: Path) -> None:
    s = spool(blob(azurite, container_name, mode="roll"), tmp_path, window_seconds=60)
    s.append("h.avro", b"held", expected_size=0)
    s.flush()
    assert stored(azurite, container_name, "h.avro") is None
    assert s.stats()["spool_ops"] == 1
    assert s.read("h.avro") == b"held"
    assert s.drain(20)  # drain (and close) closes the windows
    assert stored(azurite, container_name, "h.avro") == b"held"
    s.close()


def test_slots_and_adoption_of_orphans(azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    a = spool(down_blob(container_name), tmp_path)
    b = spool(down_blob(container_name), tmp_path)
    assert (a.slot.name, b.slot.name) == ("slot-0", "slot-1")  # one slot per live process
    a.append("from-a.avro", b"A", expected_size=0)
    b.append("from-b.avro", b"B", expected_size=0)
    a.close(timeout=0)
    b.close(timeout=0)
    # One process comes back: it takes slot-0 and adopts slot-1, whose process is gone.
    c = spool(blob(azurite, container_name), tmp_path)
    assert c.slot.name == "slot-0"
    assert c.drain(20)
    assert stored(azurite, container_name, "from-a.avro") == b"A"
    assert stored(azurite, container_name, "from-b.avro") == b"B"
    assert not (tmp_path / "slot-1").exists()
    assert not list((tmp_path / "slot-0").glob("adopted/*"))
    c.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


CHILD = textwrap.dedent("""
    import sys
    from exporters.storage import open_storage

    spool_dir, conn, container, run = sys.argv[1:5]
    s = open_storage(f"az://{container}/crash", connection_string=conn, spool_dir=spool_dir,
                     upload_max_backoff=0.2)
    i = 0
    while True:
        path = f"p{i % 3}.log"
        s.append(path, f"{run}:{i};".encode(), expected_size=s.size(path) or 0)
        s.flush()
        print(f"F {run}:{i}", flush=True)
        i += 1
""")


def test_sigkill_mid_stream_loses_and_duplicates_nothing(azurite: Azurite, container_name: str,
                                                         tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    flushed: set[str] = set()
    rng = random.Random(7)
    for run in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(spool_dir), azurite.connection_string,
             container_name, str(run)],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        stop_after = rng.randint(40, 200)
        seen = 0
        for line in child.stdout:
            if line.startswith("F "):
                flushed.add(line[2:].strip())
                seen += 1
                if seen >= stop_after:
                    break
        child.send_signal(signal.SIGKILL)  # mid-stream: appending, fsyncing or uploading
        child.wait(10)
        assert seen >= stop_after, child.stderr.read() if child.stderr else ""
        child.stdout.close()
        child.stderr.close()
    # The next start (here: in this process) uploads what the kills left behind.
    from exporters.storage import open_storage

    s = open_storage(f"az://{container_name}/crash", connection_string=azurite.connection_string,
                     spool_dir=str(spool_dir), upload_max_backoff=0.2)
    assert s.drain(30)
    s.close()
    container = azurite.service().get_container_client(container_name)
    counts: collections.Counter[str] = collections.Counter()
    for b in container.list_blobs(name_starts_with="crash/"):
        text = container.download_blob(b.name).readall().decode()
        counts.update(x for x in text.split(";") if x)
    lost = sorted(flushed - set(counts))
    duplicated = sorted(k for k, n in counts.items() if n > 1)
    print(f"flushed={len(flushed)} stored={sum(counts.values())} "
          f"lost={len(lost)} duplicated={len(duplicated)}")
    assert not lost and not duplicated, (lost[:10], duplicated[:10])
    assert len(flushed) >= 5 * 40


def test_outage_everything_accepted_arrives_within_bound(azurite_factory, container_name: str,
                                                         tmp_path: Path) -> None:
    server = azurite_factory()
    bound = 1 << 20
    s = spool(BlobStorage(f"az://{container_name}/sp", connection_string=server.connection_string,
                          retry=FAST, connect_timeout=1), tmp_path / "spool", max_bytes=bound)
    chunk = 4096
    size = s.append("o.avro", b"H" * chunk, expected_size=0)
    assert s.drain(20)
    expected = [b"H" * chunk]
    server.stop()
    rss_before = psutil.Process().memory_info().rss
    refused = 0
    peak = 0
    for i in range(1000):  # 4 MB offered during the outage, 1 MB spool
        data = i.to_bytes(4, "big") * (chunk // 4)
        try:
            size = s.append("o.avro", data, expected_size=size)
            expected.append(data)
        except SpoolFull:
            refused += 1
        peak = max(peak, s.stats()["spool_bytes"])
    s.flush()
    rss_growth = psutil.Process().memory_info().rss - rss_before
    assert peak <= bound
    assert refused > 0 and s.stats()["dropped_spool_full"] == refused
    assert rss_growth < 16 << 20, rss_growth  # data waits on disk, not in memory
    assert "cannot reach" in (s.stats()["last_error"] or "")
    server.start()  # same port, same data
    assert s.drain(30)
    s.close()
    got = server.service().get_blob_client(container_name, "sp/o.avro").download_blob().readall()
    assert got == b"".join(expected)
    print(f"outage: accepted={len(expected) - 1} refused={refused} peak_spool={peak} bound={bound} "
          f"rss_growth={rss_growth}")


METRICS_CHILD = textwrap.dedent("""
    import json, sys
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from exporters.storage import open_storage

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    conn, container, spool_dir = sys.argv[1:4]
    s = open_storage(f"az://{container}", connection_string=conn, spool_dir=spool_dir)
    s.append("m.avro", b"12345", expected_size=0)
    s.append("m.avro", b"678", expected_size=5)
    s.put("m.bin", b"xy")
    assert s.drain(20)
    out = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    key = m.name + "".join(f"[{v}]" for k, v in sorted(p.attributes.items())
                                            if k == "reason")
                    out[key] = getattr(p, "value", None) if hasattr(p, "value") else p.count
    s.close()
    print(json.dumps(out))
""")


def test_metrics_are_exported_through_opentelemetry(azurite: Azurite, container_name: str,
                                                    tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", METRICS_CHILD, azurite.connection_string, container_name,
         str(tmp_path)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout.strip().splitlines()[-1])
    p = "otel_collector_ext.storage."
    assert m[p + "uploaded.appends"] == 2
    assert m[p + "uploaded.puts"] == 1
    assert m[p + "uploaded.bytes"] == 10
    assert m[p + "upload.duration"] >= 1
    assert m[p + "spool.size"] == 0 and m[p + "spool.operations"] == 0
    assert m[p + "upload.retries"] == 0
    assert m[p + "dropped[spool_full]"] == 0 and m[p + "dropped[conflict]"] == 0


def test_listing_during_an_outage_remembers_names_written_before(
        azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    s = spool(blob(azurite, container_name), tmp_path)
    s.append("d/i.0000.avro", b"old", expected_size=0)
    assert s.drain(20)
    s.close()
    assert list(tmp_path.glob("slot-0/seg-*")) == []  # nothing left to replay
    # The process restarts while storage is unreachable: the name is still known.
    s2 = spool(down_blob(container_name), tmp_path)
    assert [o.path for o in s2.list("d/i.")] == ["d/i.0000.avro"]
    s2.close(timeout=0)
