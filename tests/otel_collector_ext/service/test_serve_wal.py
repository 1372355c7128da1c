"""`serve`'s write-ahead log in process: a full destination disk (a small tmpfs) makes the service
answer 503 with a retry hint instead of dropping, and once there is room again everything it
acknowledged is stored exactly once. Also the `service.wal` settings."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from exporters import contract as A
from otel_collector_ext.service.app import run_service
from otel_collector_ext.service.config import ServiceConfigError, parse_service_config
from tests.otel_collector_ext.service.test_receiver import service_config
from tests.support.helpers_otlp import T0, http_post, record, request
from tests.support.small_disk import mounted_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (tests run as root, CI too), unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "disk", "2m") as mount:
        yield mount


def fill_until_refused(address: tuple[str, int]) -> tuple[list[str], dict[str, str]]:
    """POST 4-record requests until one is refused: (ids acknowledged, the refusal's headers)."""
    acked: list[str] = []
    n = 0
    for _ in range(400):  # bounded: a full disk or log refuses well before
        status, headers, _ = http_post(address, payloads(n, 4))
        if status == 503:
            return acked, headers
        assert status == 200
        acked += [f"p-{k}" for k in range(n, n + 4)]
        n += 4
    raise AssertionError("never refused although the disk is full")


def payloads(first: int, count: int) -> bytes:
    return request([
        record(os.urandom(40_000), A.KIND_BYTES, collection="blobs", correlation_id=f"p-{n}",
               time_ns=T0 + n)
        for n in range(first, first + count)
    ]).SerializeToString()


def stored_ids(root: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in root.rglob("*.avro"):
        with open(path, "rb") as f:
            for row in fastavro.reader(f):
                found[row["_correlation_id"]] += 1
    return found


pytest_plugins = ["tests.support.azurite"]  # fixture: wait_for


def test_full_destination_disk_refuses_with_retry_hint_and_loses_nothing(
        tmp_path: Path, small_disk: Path, wait_for) -> None:
    config: dict[str, Any] = service_config(small_disk / "store",
                                            receiver={"protocols": {"grpc": {
                                                "max_recv_msg_size_mib": 1}}})
    config["service"]["wal"] = {"directory": str(tmp_path / "wal"), "max_bytes": 4 * 1024 * 1024}
    service = run_service(config)
    try:
        address = service.addresses["otlp/http"]
        acked, refused = fill_until_refused(address)  # the disk holds ~50 bodies, the log ~100
        assert int(refused["retry-after"]) >= 1
        wait_for(lambda: service.health()[1]["exporters"]["avro"].get("commit.failures"),
                 timeout=30, message="a commit failing on the full disk")
        assert service.health()[1]["exporters"]["avro"]["queued"] > 0
        assert stored_ids(small_disk / "store").total() < len(acked)  # held, not dropped
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        wait_for(lambda: set(stored_ids(small_disk / "store")) >= set(acked), timeout=60,
             message="acknowledged records stored once the disk has room")
        assert http_post(address, payloads(10_000, 4))[0] == 200
    finally:
        service.stop()
    found = stored_ids(small_disk / "store")
    assert not [i for i, c in found.items() if c > 1]
    assert set(acked) <= set(found)
    assert not [k for k in service.exporters["avro"].stats() if "dropped" in k]


def test_full_wal_disk_refuses_and_acknowledged_records_are_stored(
        tmp_path: Path, small_disk: Path, wait_for) -> None:
    """The log's own disk full: the request that does not fit is refused (503), nothing
    acknowledged is lost, and the service takes requests again once there is room."""
    store = tmp_path / "store"
    config: dict[str, Any] = service_config(store, receiver={"protocols": {"grpc": {
        "max_recv_msg_size_mib": 1}}})
    config["service"]["wal"] = {"directory": str(small_disk / "wal"), "max_bytes": 64 << 20}
    service = run_service(config)
    try:
        address = service.addresses["otlp/http"]
        acked, refused = fill_until_refused(address)
        assert int(refused["retry-after"]) >= 1
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        wait_for(lambda: set(stored_ids(store)) >= set(acked), timeout=60,
                 message="acknowledged records stored")
        wait_for(lambda: http_post(address, payloads(10_000, 4))[0] == 200, timeout=30,
                 message="requests taken again")
    finally:
        service.stop()
    found = stored_ids(store)
    assert not [i for i, c in found.items() if c > 1]
    assert set(acked) <= set(found)


def test_wal_settings_are_checked() -> None:
    def with_wal(wal: Any) -> dict[str, Any]:
        config = service_config(Path("/tmp/unused"))
        config["service"]["wal"] = wal
        return config

    assert parse_service_config(with_wal({"enabled": False})).wal.enabled is False
    parsed = parse_service_config(with_wal({"directory": "/var/wal", "max_bytes": 64 << 20}))
    assert parsed.wal.directory == "/var/wal" and parsed.wal.max_bytes == 64 << 20
    for bad, message in (({"size": 1}, "unknown key service.wal.size"),
                         ({"enabled": "yes"}, "service.wal.enabled"),
                         ({"directory": ""}, "service.wal.directory"),
                         ({"max_bytes": 10}, "service.wal.max_bytes"),
                         ({"max_bytes": 16 << 20}, "twice the request size limit")):
        with pytest.raises(ServiceConfigError, match=message):
            parse_service_config(with_wal(bad))
