"""The spool stays consistent when a write or fsync fails: ENOSPC, EIO and short writes
injected at each file operation it makes (through its `file_ops` seam), against Azurite.

A failed append is refused and counted, later appends and uploads are byte-exact, and
a restart replays exactly what was accepted.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from exporters.storage import StorageError, claim_spool_dir
from exporters.storage import spool as spool_module
from exporters.storage.spool import FileOps, SpooledStorage, SpoolFull
from tests.exporters.storage.test_spool import blob, down_blob, stored

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name


class FaultyFileOps(FileOps):
    """Fails each listed (method, what, fault) once, in order, once armed.

    fault: an errno name, "short" (half the bytes really written, then ENOSPC on the
    next write, as a filling disk does) or "short_ok" (half, then the rest: legal)."""

    def __init__(self, *faults: tuple[str, str, str]) -> None:
        self.faults = list(faults)
        self.armed = False
        self.fired: list[tuple[str, str, str]] = []

    def _fault(self, method: str, what: str) -> str | None:
        if self.armed and self.faults and self.faults[0][:2] == (method, what):
            fault = self.faults.pop(0)
            self.fired.append(fault)
            return fault[2]
        return None

    def _raise(self, name: str) -> None:
        code = getattr(errno, name)
        raise OSError(code, os.strerror(code))

    def write(self, what: str, fd: int, buffers: list[bytes]) -> int:
        fault = self._fault("write", what)
        if fault in ("short", "short_ok"):
            data = b"".join(buffers)
            if fault == "short":
                self.faults.insert(0, ("write", what, "ENOSPC"))
            return os.write(fd, data[: max(1, len(data) // 2)])
        if fault:
            self._raise(fault)
        return super().write(what, fd, buffers)

    def sync(self, what: str, fd: int) -> None:
        if fault := self._fault("sync", what):
            self._raise(fault)
        super().sync(what, fd)

    def truncate(self, what: str, fd: int, size: int) -> None:
        if fault := self._fault("truncate", what):
            self._raise(fault)
        super().truncate(what, fd, size)

    def create(self, what: str, path: Path, flags: int, mode: int = 0o600) -> int:
        if fault := self._fault("create", what):
            self._raise(fault)
        return super().create(what, path, flags, mode)

    def replace(self, what: str, source: Path, target: Path) -> None:
        if fault := self._fault("replace", what):
            self._raise(fault)
        super().replace(what, source, target)


A = b"A" * 5000  # larger than a segment (4096): the next append starts a new one
CASES = {
    # id: (faults, refused with, counted as)
    "segment-write-ENOSPC": ([("write", "segment", "ENOSPC")], SpoolFull, "spool_full"),
    "segment-write-EIO": ([("write", "segment", "EIO")], StorageError, "write_failed"),
    "segment-short-write": ([("write", "segment", "short")], SpoolFull, "spool_full"),
    "segment-short-write-then-rest": ([("write", "segment", "short_ok")], None, None),
    "segment-fsync-EIO": ([("sync", "segment", "EIO")], StorageError, "write_failed"),
    "segment-write-and-cut-back-fail": (
        [("write", "segment", "EIO"), ("truncate", "segment", "EIO")], StorageError,
        "write_failed"),
    "segment-create-ENOSPC": ([("create", "segment", "ENOSPC")], SpoolFull, "spool_full"),
    "segment-dir-fsync-EIO": ([("sync", "directory", "EIO")], StorageError, "write_failed"),
    "index-write-ENOSPC": ([("write", "index", "ENOSPC")], SpoolFull, "spool_full"),
    "index-short-write": ([("write", "index", "short")], SpoolFull, "spool_full"),
    "index-fsync-EIO": ([("sync", "index", "EIO")], StorageError, "write_failed"),
    "index-write-and-cut-back-fail": (
        [("write", "index", "short"), ("truncate", "index", "EIO")], SpoolFull, "spool_full"),
}


def index_lines(directory: Path) -> list[str]:
    return (directory / "slot-0" / "names.idx").read_text().split("\n")


@pytest.mark.parametrize("restart", [False, True], ids=["uploaded", "replayed-after-restart"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_write_is_refused_counted_and_leaves_the_spool_consistent(
        azurite: Azurite, container_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        case: str, restart: bool) -> None:
    faults, refused_with, reason = CASES[case]
    faulty = FaultyFileOps(*faults)
    monkeypatch.setattr(spool_module, "file_ops", faulty)
    inner = down_blob(container_name) if restart else blob(azurite, container_name)
    s = SpooledStorage(inner, tmp_path, segment_bytes=4096, max_backoff=0.2)
    assert s.append("f/x.avro", A, expected_size=0) == 5000
    faulty.armed = True
    if refused_with is None:
        assert s.append("f/y.avro", b"B" * 100, expected_size=0) == 100
        expected_y = b"B" * 100 + b"C" * 100
        y_size = 100
    else:
        with pytest.raises(refused_with) as info:
            s.append("f/y.avro", b"B" * 100, expected_size=0)
        assert "dropped" in str(info.value)
        if refused_with is StorageError:
            assert not isinstance(info.value, SpoolFull)  # a broken disk is not a full one
        expected_y = b"C" * 100
        y_size = 0
    assert [f for f in faulty.fired if f in faults] == faults and not faulty.faults  # all hit
    stats = s.stats()
    if reason:
        assert stats[f"dropped_{reason}"] == 1 and stats["dropped_total"] == 1
    # Refused: nothing changed, so the writer carries on from the same size.
    assert s.append("f/y.avro", b"C" * 100, expected_size=y_size) == y_size + 100
    assert s.append("f/x.avro", b"D" * 100, expected_size=5000) == 5100
    if restart:
        s.close(timeout=0)  # the process goes away with everything in the spool
        s = SpooledStorage(blob(azurite, container_name), tmp_path, max_backoff=0.2)
    assert s.read("f/x.avro") == A + b"D" * 100  # what is stored, plus what is spooled
    assert s.drain(20)
    assert stored(azurite, container_name, "f/x.avro") == A + b"D" * 100
    assert stored(azurite, container_name, "f/y.avro") == expected_y
    assert s.stats()["dropped_corrupt"] == 0
    s.close()
    # The index names both objects on whole lines (a line cut short may stay before them).
    lines = index_lines(tmp_path)
    assert {"f/x.avro", "f/y.avro"} <= set(lines) and lines[-1] == ""
    assert all(line in ("f/x.avro", "f/y.avro") or "f/y.avro".startswith(line)
               for line in lines)
    # Nothing is replayed twice by a further restart.
    again = SpooledStorage(blob(azurite, container_name), tmp_path, max_backoff=0.2)
    assert again.stats()["spool_ops"] == 0
    again.close()
    assert stored(azurite, container_name, "f/x.avro") == A + b"D" * 100


def test_a_restart_on_a_full_disk_still_opens_and_uploads(
        azurite: Azurite, container_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    s = SpooledStorage(down_blob(container_name), tmp_path, max_backoff=0.2)
    s.append("r/a.avro", b"kept", expected_size=0)
    s.close(timeout=0)
    (tmp_path / "slot-0" / "names.idx").unlink()  # as if its entry were lost: compacts at start
    # Restart with the disk full: the index can neither be rewritten nor appended to.
    faulty = FaultyFileOps(("replace", "index", "ENOSPC"), ("write", "index", "ENOSPC"))
    faulty.armed = True
    monkeypatch.setattr(spool_module, "file_ops", faulty)
    s2 = SpooledStorage(blob(azurite, container_name), tmp_path, max_backoff=0.2)
    assert not faulty.faults  # compaction and the recovered name's entry both failed
    assert not list(tmp_path.glob("slot-0/.names.idx*"))  # no temporary file left
    assert s2.drain(20)
    assert stored(azurite, container_name, "r/a.avro") == b"kept"
    # The name the index could not take goes in with the next one.
    s2.append("r/b.avro", b"next", expected_size=0)
    assert s2.drain(20)
    s2.close()
    assert set(index_lines(tmp_path)) == {"r/a.avro", "r/b.avro", ""}


def test_a_marker_that_cannot_be_written_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for fault in (("write", "marker", "short"), ("sync", "marker", "EIO"),
                  ("replace", "marker", "ENOSPC")):
        faulty = FaultyFileOps(fault)
        faulty.armed = True
        monkeypatch.setattr(spool_module, "file_ops", faulty)
        with pytest.raises(OSError):
            claim_spool_dir(tmp_path, "https://acct/container/prefix")
        assert not faulty.faults and sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(spool_module, "file_ops", FileOps())
    claim_spool_dir(tmp_path, "https://acct/container/prefix")
    assert (tmp_path / "DESTINATION").read_text() == "https://acct/container/prefix"


def test_an_io_error_on_the_spool_is_counted_as_storage_failed_and_flush_says_so(
        azurite: Azurite, container_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    import otel_collector_ext as oce
    from otel_collector_ext import Collector
    from tests.support.conservation import assert_conserved
    from tests.test_blob_e2e import blob_config

    faulty = FaultyFileOps(("write", "segment", "EIO"))
    monkeypatch.setattr(spool_module, "file_ops", faulty)
    pipeline = oce.configure(blob_config(azurite.connection_string, container_name,
                                         tmp_path / "spool"))
    c = Collector(name="model_inputs")
    c.collect(pd.DataFrame({"i": [0]}))
    assert oce.flush()
    faulty.armed = True
    c.collect(pd.DataFrame({"i": [1]}))
    assert not oce.flush()  # its record was refused by the spool
    c.collect(pd.DataFrame({"i": [2]}))
    assert oce.flush()
    stats = oce.stats()
    assert stats["exporter.records.dropped{collection=model_inputs,reason=storage_failed}"] == 1
    assert pipeline.exporter.storage.stats()["dropped_write_failed"] == 1  # type: ignore[attr-defined]
    assert assert_conserved(stats)["stored"] == 2
    oce.shutdown()
    frame = oce.load(f"az://{container_name}/data", endpoint="ep", deployment="blue",
                     collection="model_inputs",
                     storage_options={"connection_string": azurite.connection_string,
                                      "spool": False})
    assert sorted(frame["i"]) == [0, 2]
