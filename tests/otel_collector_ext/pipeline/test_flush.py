"""flush() is exact: it waits for what was collected before it, and says False on a loss."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import otel_collector_ext as oce
from otel_collector_ext import Collector
from tests.conftest import local_config
from tests.support.conservation import assert_conserved, total

PRODUCERS = 8


def stored_ids(data_dir: Path) -> set[tuple[int, int]]:
    frame = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="busy")
    return set(zip(frame["thread"], frame["i"], strict=True))


def test_flush_returns_true_under_eight_producer_threads(data_dir: Path) -> None:
    # A queue large enough that nothing is dropped: the producers keep it from ever
    # emptying, which a flush waiting for an empty queue would wait for in vain.
    oce.configure(local_config(data_dir, batch={"max_queue_size": 1_000_000,
                                                "max_queue_bytes": 1 << 31,
                                                "max_export_batch_size": 512,
                                                "schedule_delay_millis": 50}))
    c = Collector(name="busy")
    stop = threading.Event()
    counts = [0] * PRODUCERS

    pipeline = oce.pipeline.wiring.get_pipeline()

    def produce(t: int) -> None:
        while not stop.is_set():
            c.collect({"thread": t, "i": counts[t]})
            counts[t] += 1
            if pipeline.processor.pending > 20_000:
                time.sleep(0.001)  # pacing: a deep backlog, never a full queue

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    durations, backlog = [], []
    try:
        for _ in range(3):
            before = list(counts)  # every id below these was collected before the call
            started = time.monotonic()
            assert oce.flush(timeout_millis=120_000)
            durations.append(time.monotonic() - started)
            backlog.append(pipeline.processor.pending)
            got = stored_ids(data_dir)
            missing = [(t, i) for t in range(PRODUCERS) for i in range(before[t])
                       if (t, i) not in got]
            assert not missing, missing[:10]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    # The queue was not empty when the flushes returned: they waited for a watermark.
    assert any(backlog), backlog
    assert oce.flush()
    stats = oce.stats()
    terms = assert_conserved(stats)
    assert terms["collected"] == sum(counts) == terms["stored"] and terms["in_flight"] == 0
    assert total(stats, "records.dropped") == 0
    print(f"flush under {PRODUCERS} producers: durations={[round(d, 2) for d in durations]}s "
          f"backlog_at_return={backlog} collected={sum(counts)}")


def test_flush_reports_a_loss_once(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, batch={"max_queue_size": 5,
                                                "schedule_delay_millis": 3_600_000,
                                                "max_export_batch_size": 100}))
    c = Collector(name="busy")
    for i in range(8):  # 3 dropped: queue_full
        c.collect({"thread": 0, "i": i})
    assert not oce.flush()  # called after the loss
    assert oce.flush()  # reported already; nothing lost since
    c.collect({"thread": 0, "i": 8})
    assert oce.flush()
    stats = oce.stats()
    assert stats["records.dropped{collection=busy,reason=queue_full}"] == 3
    assert assert_conserved(stats)["stored"] == 6
