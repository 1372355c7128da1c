"""The write-ahead log (`SegmentLog`) and the commit journal (`CommittingStorage`) on their own:
torn tails, group commit, positions across restarts, and re-applying a commit idempotently."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from exporters.storage import AppendConflict, LocalStorage, StorageError
from exporters.storage.journal import CommittingStorage
from exporters.storage.record_log import SegmentLog


def test_log_replays_what_it_holds_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, max_bytes=1 << 20)
    positions = [log.append(f"record {i}".encode()) for i in range(5)]
    log.sync(positions[-1])
    log.close()
    segment = next(tmp_path.glob("wal-*.log"))
    with open(segment, "ab") as f:  # what a SIGKILL in the middle of a write leaves
        f.write(b"WAL1\xff\x00\x00\x00garbage")
    again = SegmentLog(tmp_path, max_bytes=1 << 20)
    assert [body for _, body in again.replay()] == [f"record {i}".encode() for i in range(5)]
    assert [p for p, _ in again.replay(after=positions[2])] == positions[3:]
    newer = again.append(b"after restart")
    assert newer > positions[-1]  # positions only grow, across restarts too
    again.close()


def test_release_deletes_only_segments_wholly_behind_the_checkpoint(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, max_bytes=1 << 20, segment_bytes=1024)
    positions = [log.append(os.urandom(300)) for _ in range(12)]
    log.sync(positions[-1])
    before = log.used_bytes
    segments = sorted(tmp_path.glob("wal-*.log"))
    assert len(segments) >= 3
    log.release(positions[5])
    assert log.used_bytes < before
    log.close()
    again = SegmentLog(tmp_path, max_bytes=1 << 20)
    assert [p for p, _ in again.replay(after=positions[5])] == positions[6:]
    again.close()


def test_concurrent_writers_share_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.storage.record_log as record_log

    syncs = []
    real = record_log._datasync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(record_log, "_datasync", counting)
    log = SegmentLog(tmp_path, max_bytes=64 << 20)
    start = threading.Barrier(16)

    def writer() -> None:
        start.wait()
        for _ in range(50):
            log.sync(log.append(b"x" * 100))

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(syncs) < 16 * 50  # some fsyncs covered several writers' records
    again = SegmentLog(tmp_path, max_bytes=64 << 20)
    assert len(list(again.replay())) == 16 * 50
    again.close()


def test_log_refuses_what_does_not_fit(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, max_bytes=4096)
    assert log.has_room(1000)
    for _ in range(3):
        log.append(b"y" * 1000)
    assert not log.has_room(1200)
    log.close()


def journaled(tmp_path: Path) -> CommittingStorage:
    return CommittingStorage(LocalStorage(tmp_path / "data"), tmp_path / "journal")


def test_a_commit_applies_together_and_is_applied_again_idempotently(tmp_path: Path) -> None:
    inner = LocalStorage(tmp_path / "data")
    storage = CommittingStorage(inner, tmp_path / "journal")
    assert storage.token is None
    assert storage.append("a/f.bin", b"hello ", expected_size=0) == 6
    assert storage.append("a/f.bin", b"world", expected_size=6) == 11
    assert inner.size("a/f.bin") is None  # held until the commit
    assert [i.path for i in storage.list("a/")] == ["a/f.bin"]  # a new name is taken already
    with pytest.raises(AppendConflict):
        storage.append("a/f.bin", b"!", expected_size=3)
    storage.commit(b"\x00\x07")
    assert inner.read("a/f.bin") == b"hello world"
    storage.close()
    # A restart re-applies the last commit: nothing is written twice.
    again = journaled(tmp_path)
    assert again.token == b"\x00\x07"
    assert (tmp_path / "data" / "a" / "f.bin").read_bytes() == b"hello world"
    assert again.counts["appends_already_stored"] == 2
    again.close()


def test_a_torn_local_write_is_completed_on_restart(tmp_path: Path) -> None:
    storage = journaled(tmp_path)
    storage.append("f.bin", b"0123456789", expected_size=0)
    storage.commit(b"one")
    storage.append("f.bin", b"abcdefghij", expected_size=10)
    storage.commit(b"two")
    storage.close()
    path = tmp_path / "data" / "f.bin"
    with open(path, "r+b") as f:  # the process died in the middle of applying "two"
        f.truncate(14)
    again = journaled(tmp_path)
    assert path.read_bytes() == b"0123456789abcdefghij"
    assert again.token == b"two" and again.counts["appends_completed"] == 1
    again.close()


def test_an_uncommitted_batch_never_reaches_storage(tmp_path: Path) -> None:
    storage = journaled(tmp_path)
    storage.append("f.bin", b"kept", expected_size=0)
    storage.commit(b"1")
    storage.append("f.bin", b"lost with the process", expected_size=4)
    storage.close()  # no commit: as if killed
    again = journaled(tmp_path)
    assert (tmp_path / "data" / "f.bin").read_bytes() == b"kept"
    assert again.token == b"1"
    again.close()


def test_a_failed_apply_is_kept_and_retried(tmp_path: Path) -> None:
    blocker = tmp_path / "data" / "d"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where a folder must go")
    storage = journaled(tmp_path)
    storage.append("d/f.bin", b"payload", expected_size=0)
    with pytest.raises(StorageError):
        storage.commit(b"1")
    assert storage.pending and storage.token == b"1"
    blocker.unlink()
    storage.commit(b"2")
    assert (tmp_path / "data" / "d" / "f.bin").read_bytes() == b"payload"
    assert not storage.pending
    storage.close()


def test_the_journal_stays_small(tmp_path: Path) -> None:
    storage = CommittingStorage(LocalStorage(tmp_path / "data"), tmp_path / "journal",
                                max_journal_bytes=4096)
    size = 0
    for i in range(50):
        storage.append("f.bin", b"z" * 500, expected_size=size)
        size += 500
        storage.commit(str(i).encode())
    assert (tmp_path / "journal").stat().st_size < 4096 + 1024
    storage.close()
    again = journaled(tmp_path)
    assert again.token == b"49" and (tmp_path / "data" / "f.bin").stat().st_size == 25_000
    again.close()
