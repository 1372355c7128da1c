"""A real full disk (a 20 MiB tmpfs) under the local destination and under the Blob spool.

flush() returns False for rounds in which records were dropped, the drops carry the
documented reason, nothing is stored twice, every file stays readable, and the
counters add up. Freeing space (or storage coming back) lets collection continue.
"""

from __future__ import annotations

import collections
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import fastavro
import pandas as pd

import otel_collector_ext as oce
from exporters.profiles import PROFILE_SUFFIX
from otel_collector_ext import Collector
from tests.conftest import local_config
from tests.support.conservation import assert_conserved, total
from tests.test_blob_e2e import blob_config

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite", "tests.support.small_disk"]

ROUND = 20  # records per flush
PAYLOAD = 32 * 1024  # incompressible characters per record


def collect_round(c: Collector, start: int) -> list[int]:
    ids = list(range(start, start + ROUND))
    for i in ids:
        c.collect(pd.DataFrame({"id": [i], "payload": [os.urandom(PAYLOAD // 2).hex()]}))
    return ids


def collect_until_dropped(c: Collector, start: int, rounds: int = 200) -> dict[int, tuple[bool, list[int]]]:
    """Rounds of records, each followed by flush(), until two rounds have failed."""
    results: dict[int, tuple[bool, list[int]]] = {}
    failed = 0
    for n in range(rounds):
        ids = collect_round(c, start + n * ROUND)
        ok = oce.flush()
        results[n] = (ok, ids)
        failed += not ok
        if failed >= 2:
            return results
    raise AssertionError(f"the disk never filled in {rounds} rounds")


def check_outcome(results: dict[int, tuple[bool, list[int]]], stored: collections.Counter[int],
                  reason: str) -> dict[str, int]:
    duplicated = [i for i, n in stored.items() if n > 1]
    assert not duplicated, duplicated[:10]
    for ok, ids in results.values():
        if ok:  # flush() said True: every record of the round is stored
            assert all(i in stored for i in ids), [i for i in ids if i not in stored][:5]
    assert any(not ok and not all(i in stored for i in ids) for ok, ids in results.values())
    stats = oce.stats()
    terms = assert_conserved(stats)
    assert terms["in_flight"] == 0 and terms["stored"] == sum(stored.values())
    dropped = total(stats, "exporter.records.dropped")
    assert dropped > 0 and dropped == total(stats, "exporter.records.dropped", reason=reason,
                                            collection="model_inputs")
    return terms


def test_local_destination_on_a_full_disk(small_disk: Path) -> None:
    root = small_disk / "collected"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (8 << 20))  # what another program holds on the same disk
    oce.configure(local_config(root, batch={"schedule_delay_millis": 20}))
    c = Collector(name="model_inputs")
    results = collect_until_dropped(c, 0)
    filler.unlink()  # space comes back: collection goes on
    after = collect_round(c, 10**6)
    assert oce.flush()
    oce.shutdown()
    stored: collections.Counter[int] = collections.Counter()
    files = sorted(root.rglob("*.avro"))
    for path in files:  # every file is a whole Avro file
        with open(path, "rb") as f:
            stored.update(r["id"] for r in fastavro.reader(f))
    assert all(i in stored for i in after)
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(".")]  # no temp files
    terms = check_outcome(results, stored, "storage_failed")
    print(f"local full disk: files={len(files)} rounds={len(results)} "
          f"false={sum(not ok for ok, _ in results.values())} {terms}")


def test_blob_spool_on_a_full_disk_while_storage_is_down(
        azurite_factory, container_name: str, small_disk: Path, wait_for) -> None:
    server: Azurite = azurite_factory()
    config = blob_config(server.connection_string, container_name, small_disk / "spool",
                         connect_timeout=1)
    config["batch"] = {"schedule_delay_millis": 20}
    pipeline = oce.configure(config)
    storage = pipeline.exporter.storage  # type: ignore[attr-defined]
    c = Collector(name="model_inputs")
    first = collect_round(c, 0)
    assert oce.flush() and storage.drain(20)
    server.stop()
    results = collect_until_dropped(c, ROUND)
    assert storage.stats()["dropped_spool_full"] > 0  # the spool's disk, not its bound
    server.start()  # storage is back: the spool uploads and frees its disk
    assert storage.drain(60)
    after = collect_round(c, 10**6)
    assert oce.flush()
    oce.shutdown()
    container = server.service().get_container_client(container_name)
    stored: collections.Counter[int] = collections.Counter()
    for blob in container.list_blobs():
        if "/_schema/" in blob.name or blob.name.endswith(PROFILE_SUFFIX):
            continue  # the collection's published schemas and the files' profiles, not data
        data = container.download_blob(blob.name).readall()
        stored.update(r["id"] for r in fastavro.reader(io.BytesIO(data)))
    assert all(i in stored for i in first + after)
    terms = check_outcome(results, stored, "spool_full")
    print(f"spool full disk: rounds={len(results)} "
          f"false={sum(not ok for ok, _ in results.values())} {terms}")
