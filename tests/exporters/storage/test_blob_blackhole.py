"""A black hole in front of Blob: a proxy that accepts connections and never answers, for
30 s, while records keep arriving for new partitions.

Nothing is dropped while the spool has room, collect() keeps returning (its latency is
measured and printed, not asserted), flush() keeps returning True, and afterwards every
record is in Blob exactly once. The Blob client runs with its default timeouts.
"""

from __future__ import annotations

import collections
import io
import statistics
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import fastavro

import otel_collector_ext as oce
from exporters.profiles import PROFILE_SUFFIX
from otel_collector_ext import BasicCorrelationContext, Collector
from tests.support.blackhole import BlackHoleProxy
from tests.support.conservation import assert_conserved, total
from tests.test_blob_e2e import HOUR, T0, blob_config

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name

OUTAGE_SECONDS = 30.0
RATE = 400  # records per second, paced
NEW_PARTITION_SECONDS = 2.0


def test_black_hole_in_front_of_blob_drops_nothing_and_delivers_once(
        azurite: Azurite, container_name: str, tmp_path: Path) -> None:
    proxy = BlackHoleProxy(azurite.port).start()
    conn = azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/")
    config = blob_config(conn, container_name, tmp_path / "spool")
    pipeline = oce.configure(config)
    storage = pipeline.exporter.storage  # type: ignore[attr-defined]
    c = Collector(name="model_inputs")
    sent = 0
    latencies: dict[str, list[float]] = {"before": [], "outage": []}
    flushes: list[tuple[bool, float]] = []

    def collect_for(seconds: float, phase: str, first_hour: int) -> int:
        nonlocal sent
        start = time.monotonic()
        hour = first_hour
        n = 0
        while (elapsed := time.monotonic() - start) < seconds:
            hour = first_hour + int(elapsed / NEW_PARTITION_SECONDS)  # a new partition
            context = BasicCorrelationContext(timestamp=T0 + hour * HOUR + 1)
            began = time.perf_counter()
            c.collect({"id": sent, "hour": hour}, context)
            latencies[phase].append(time.perf_counter() - began)
            sent += 1
            n += 1
            # Pacing to a steady rate (not synchronisation: nothing waits on this).
            time.sleep(max(0.0, n / RATE - (time.monotonic() - start)))
        return hour

    last_hour = collect_for(2.0, "before", 0)
    assert oce.flush() and storage.drain(30)
    proxy.black_hole()
    outage_started = time.monotonic()
    # The producer never calls flush() (as a server would not); another thread does.
    done = threading.Event()

    def flush_every_second() -> None:
        while not done.wait(1.0):
            began = time.monotonic()
            flushes.append((oce.flush(), time.monotonic() - began))

    flusher = threading.Thread(target=flush_every_second)
    flusher.start()
    try:
        collect_for(OUTAGE_SECONDS, "outage", last_hour + 1)
    finally:
        done.set()
        flusher.join()
    outage = time.monotonic() - outage_started
    stats_in_outage = storage.stats()
    proxy.restore()
    restored = time.monotonic()
    assert storage.drain(120)
    delivered_after = time.monotonic() - restored
    stats = oce.stats()
    oce.shutdown()
    proxy.close()
    # Every record is in Blob exactly once (read directly, not through the proxy).
    container = azurite.service().get_container_client(container_name)
    counts: collections.Counter[int] = collections.Counter()
    names = []
    for blob in container.list_blobs():
        if "/_schema/" in blob.name or blob.name.endswith(PROFILE_SUFFIX):
            continue  # the collection's published schemas and the files' profiles, not data
        names.append(blob.name)
        data = container.download_blob(blob.name).readall()
        counts.update(r["id"] for r in fastavro.reader(io.BytesIO(data)))
    lost = [i for i in range(sent) if i not in counts]
    duplicated = [i for i, n in counts.items() if n > 1]
    assert not lost and not duplicated, (lost[:10], duplicated[:10])
    assert total(stats, "records.dropped") == 0 and total(stats, "exporter.records.dropped") == 0
    assert stats_in_outage["dropped_total"] == 0 and stats_in_outage["spool_ops"] > 0
    assert flushes and all(ok for ok, _ in flushes), flushes  # spooled: flush() kept its promise
    assert_conserved(stats)
    partitions = len({n.rsplit("/", 1)[0] for n in names})
    assert partitions >= OUTAGE_SECONDS / NEW_PARTITION_SECONDS
    ms = {phase: sorted(x * 1000 for x in v) for phase, v in latencies.items()}
    print(f"black hole {outage:.0f}s: records={sent} partitions={partitions} lost=0 dup=0 "
          f"dropped=0 accepted_in_hole={proxy.accepted_in_hole}; collect() ms "
          + " ".join(f"{p}: p50={statistics.median(v):.3f} p99={v[int(len(v) * 0.99)]:.3f} "
                     f"max={v[-1]:.1f}" for p, v in ms.items())
          + f"; flush() max={max(d for _, d in flushes):.2f}s; "
          f"delivered {delivered_after:.1f}s after the hole closed")
