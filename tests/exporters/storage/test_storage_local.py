from pathlib import Path

import fastavro
import pytest

from exporters.avro.partitioning import partition_dir, safe_segment, time_path
from exporters.storage import AppendConflict, LocalStorage, open_storage
from exporters.storage.paths import check_relative_path
from tests.conftest import run_python


def test_append_checks_expected_size(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.append("a/b.avro", b"abc", expected_size=0) == 3
    assert storage.append("a/b.avro", b"de", expected_size=3) == 5
    with pytest.raises(AppendConflict) as info:
        storage.append("a/b.avro", b"xx", expected_size=3)  # a retry of an append that landed
    assert info.value.actual_size == 5
    assert storage.read("a/b.avro") == b"abcde"
    storage.put("a/c.bin", b"body")
    assert [(o.path, o.size) for o in storage.list("a/")] == [("a/b.avro", 5), ("a/c.bin", 4)]
    assert storage.size("missing") is None


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "a/\x00", "C:x", "a/b\n",
     "x" * 2000],
)
def test_paths_outside_the_root_are_rejected(tmp_path: Path, path: str) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError):
        storage.append(path, b"x", expected_size=0)
    with pytest.raises(ValueError):
        check_relative_path(path)
    assert not any((tmp_path).glob("x")) and not (tmp_path / "root").exists()


def test_symlink_escape_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(root).put("link/evil", b"x")
    assert not (tmp_path / "evil").exists()


def test_open_storage_forms(tmp_path: Path) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert open_storage(f"file://{tmp_path}").root == tmp_path.resolve()
    for bad in ("", "   ", "ftp://x/y"):
        with pytest.raises(ValueError):
            open_storage(bad)
    with pytest.raises(ValueError):
        open_storage(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("model_inputs", "model_inputs"), ("..", "%2E%2E"), ("a/b", "a%2Fb"), ("", "%00"),
     ("-x", "-x"), (".hidden", "%2Ehidden"), ("é", "%C3%A9"), ("v1.", "v1%2E"),
     ("v1.2", "v1.2")],
)
def test_partition_segments_are_escaped(value: str, expected: str) -> None:
    assert safe_segment(value) == expected
    check_relative_path(safe_segment(value))


def test_partition_layout_follows_event_time_and_rolling_rate() -> None:
    t = 1_764_000_000_000_000  # 2025-11-24 16:00:00 UTC in µs
    assert time_path(t, "hour") == "2025/11/24/16"
    assert time_path(t + 61_000_000, "minute") == "2025/11/24/16/01"
    assert time_path(t, "day") == "2025/11/24"
    assert partition_dir("ep", "dep", "inputs", t) == "ep/dep/inputs/2025/11/24/16"


def test_writer_moves_past_files_someone_else_writes(tmp_path: Path) -> None:
    from exporters.avro.files import AvroFileWriter

    storage = LocalStorage(tmp_path)
    schema = {"type": "record", "name": "r", "fields": [{"name": "a", "type": "long"}]}
    writer = AvroFileWriter(storage)
    assert writer.write("p", "i", schema, [{"a": 1}]) == "p/i.0000.avro"
    # Another writer with the same instance id takes the current and the next two names.
    for seq in range(3):
        storage.append(f"p/i.{seq:04d}.avro", b"theirs", expected_size=storage.size(
            f"p/i.{seq:04d}.avro") or 0)
    path = writer.write("p", "i", schema, [{"a": 2}])
    assert path == "p/i.0003.avro"
    with open(tmp_path / path, "rb") as f:
        assert [r["a"] for r in fastavro.reader(f)] == [2]
    assert storage.read("p/i.0001.avro") == b"theirs"  # never appended to


def test_a_failed_append_leaves_the_file_readable(tmp_path: Path) -> None:
    code = f"""
import resource, signal, fastavro
from exporters.avro.files import AvroFileWriter
from exporters.storage.local import LocalStorage
w = AvroFileWriter(LocalStorage({str(tmp_path)!r}), codec="null")
schema = {{"type": "record", "name": "r", "fields": [{{"name": "s", "type": "string"}}]}}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
w.write("p", "i", schema, [{{"s": "a" * 500}}])
resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))  # the disk fills up mid-write
try:
    w.write("p", "i", schema, [{{"s": "b" * 2000}}])
    raise SystemExit("the write should have failed")
except OSError:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
w.write("p", "i", schema, [{{"s": "c" * 10}}])
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    rows = []
    for path in sorted(tmp_path.rglob("*.avro")):
        with open(path, "rb") as f:
            rows += [r["s"][0] for r in fastavro.reader(f)]
    assert rows == ["a", "c"]


def test_forked_workers_never_corrupt_files(tmp_path: Path) -> None:
    code = f"""
import os
import otel_collector_ext as oce
oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}},
               "instance_id": "same", "batch": {{"schedule_delay_millis": 5}}}})
c = oce.Collector(name="w")
c.collect({{"worker": -1, "i": 0}})
oce.flush()
children = []
for n in range(6):
    pid = os.fork()
    if pid == 0:
        for i in range(40):
            c.collect({{"worker": n, "i": i}})
            oce.flush()
        os._exit(0)
    children.append(pid)
for pid in children:
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    total = 0
    for path in tmp_path.rglob("*.avro"):
        with open(path, "rb") as f:
            total += sum(1 for _ in fastavro.reader(f))  # raises on a corrupt file
    assert total == 1 + 6 * 40


def test_long_and_escaped_segments_stay_distinct_and_bounded() -> None:
    values = ["a" * 128, "a" * 129, "a" * 200, "a" * 129 + "-tenant-c", "é" * 100, "é" * 101]
    segments = [safe_segment(v) for v in values]
    assert len(set(segments)) == len(values)
    assert all(len(s.encode()) <= 128 for s in segments)
    for s in segments:
        check_relative_path(s)
