"""End to end on Azurite: Collector → OTel → Avro exporter → spool → Blob → load().

Real processes and a real storage emulator: crashes are SIGKILLs of child
processes, outages are Azurite stopped and started again.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
import pandas as pd
import psutil
import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

import otel_collector_ext as oce
from exporters import contract as A
from exporters.profiles import PROFILE_SUFFIX, FileProfile
from otel_collector_ext import BasicCorrelationContext, Collector

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, azurite_factory, container_name, wait_for

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600
T0 = 1_795_000_000 - 1_795_000_000 % HOUR  # an hour boundary


def blob_config(conn: str | None, container: str, spool_dir: Path, *, destination: str | None = None,
                **storage: Any) -> dict[str, Any]:
    options = {"connection_string": conn, "spool_dir": str(spool_dir), "upload_max_backoff": 0.2}
    options.update(storage)
    return {
        "endpoint": "ep",
        "deployment": "blue",
        "model_version": "7",
        "instance_id": "replica-1",
        "exporter": {"type": "avro", "destination": destination or f"az://{container}/data",
                     "storage_options": {k: v for k, v in options.items() if v is not None}},
        "batch": {"schedule_delay_millis": 50},
    }


def load(conn: str, container: str, collection: str) -> pd.DataFrame:
    return oce.load(f"az://{container}/data", endpoint="ep", deployment="blue",
                    collection=collection,
                    storage_options={"connection_string": conn, "spool": False})


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize("mode", ["append", "roll"])
def test_round_trip_over_several_partitions(azurite: Azurite, container_name: str, tmp_path: Path,
                                            mode: str) -> None:
    oce.configure(blob_config(azurite.connection_string, container_name, tmp_path / "spool",
                              mode=mode))
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    n = 3000
    for i in range(n):
        context = BasicCorrelationContext(timestamp=T0 + (i % 4) * HOUR + i / 1000)
        inputs.collect(pd.DataFrame({"id": [i], "x": [i * 0.5], "name": [f"row-{i}"]}), context)
        outputs.collect({"id": i, "score": float(i % 7)}, context)
        if i % 1000 == 999:
            assert oce.flush()
    oce.shutdown()  # closes the spool: uploads everything first
    got_in = load(azurite.connection_string, container_name, "model_inputs")
    got_out = load(azurite.connection_string, container_name, "model_outputs")
    assert len(got_in) == n and len(got_out) == n
    assert sorted(got_in["id"]) == list(range(n))
    assert str(got_in["id"].dtype) == "int64" and str(got_in["x"].dtype) == "float64"
    row = got_in.set_index("id").loc[1234]
    assert row["x"] == 617.0 and row["name"] == "row-1234"
    joined = got_in.merge(got_out, on=["_correlation_id", "id"])
    assert len(joined) == n and (joined["score"] == joined["id"] % 7).all()
    # The layout, and every blob is an Avro file any reader opens.
    container = azurite.service().get_container_client(container_name)
    names = [b.name for b in container.list_blobs()]
    # Each collection's reader schema is published beside its data, through the spool too.
    schemas = [name for name in names if "/_schema/" in name]
    profiles = {name for name in names if name.endswith(PROFILE_SUFFIX)}
    names = [name for name in names if "/_schema/" not in name and name not in profiles]
    for collection in ("model_inputs", "model_outputs"):
        latest = f"data/ep/blue/{collection}/_schema/latest.avsc"
        assert latest in schemas
        reader = json.loads(container.get_blob_client(latest).download_blob().readall())
        for name in names:
            if f"/{collection}/" in name:
                data = container.get_blob_client(name).download_blob().readall()
                assert list(fastavro.reader(io.BytesIO(data), reader_schema=reader))
    hours = "|".join(time.strftime("%Y/%m/%d/%H", time.gmtime(T0 + h * HOUR)) for h in range(4))
    pattern = re.compile(rf"data/ep/blue/model_(inputs|outputs)/({hours})/replica-1\.\d{{4}}\.avro")
    assert names and all(pattern.fullmatch(name) for name in names), names
    assert len({name.rsplit("/", 1)[0] for name in names}) == 8  # 2 collections x 4 hours
    rows = 0
    for name in names:
        client = container.get_blob_client(name)
        kind = client.get_blob_properties().blob_type
        assert kind == ("AppendBlob" if mode == "append" else "BlockBlob")
        data = client.download_blob().readall()
        in_file = sum(1 for _ in fastavro.reader(io.BytesIO(data)))
        rows += in_file
        # Its column profile went through the spool too, and describes exactly this blob.
        profile = FileProfile.from_json(
            container.get_blob_client(name + PROFILE_SUFFIX).download_blob().readall())
        assert (profile.rows, profile.file_bytes) == (in_file, len(data))
    assert rows == 2 * n and profiles == {name + PROFILE_SUFFIX for name in names}


CRASH_CHILD = textwrap.dedent("""
    import json, sys
    import pandas as pd
    import otel_collector_ext as oce
    from otel_collector_ext import Collector

    config, run = json.loads(sys.argv[1]), sys.argv[2]
    oce.configure(config)
    inputs = Collector(name="model_inputs")
    pending = []
    i = 0
    while True:
        key = f"{run}:{i}"
        inputs.collect(pd.DataFrame({"key": [key], "i": [i]}))
        pending.append(key)
        i += 1
        if i % 7 == 0:
            assert oce.flush()
            print("F " + " ".join(pending), flush=True)
            pending = []
""")


def test_sigkilled_collector_loses_and_duplicates_nothing(azurite: Azurite, container_name: str,
                                                          tmp_path: Path) -> None:
    import json

    config = blob_config(azurite.connection_string, container_name, tmp_path / "spool")
    config["batch"] = {"schedule_delay_millis": 20}
    flushed: set[str] = set()
    rng = random.Random(11)
    runs = 4
    for run in range(runs):
        child = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, json.dumps(config), str(run)],
                                 cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stderr is not None
        stop_after = rng.randint(10, 40)  # flushes, of 7 records each
        seen = 0
        for line in child.stdout:
            if line.startswith("F "):
                flushed.update(line.split()[1:])
                seen += 1
                if seen >= stop_after:
                    break
        child.send_signal(signal.SIGKILL)  # collecting, converting, spooling or uploading
        child.wait(10)
        assert seen >= stop_after, child.stderr.read()
        child.stdout.close()
        child.stderr.close()
    # A restart uploads what the kills left in the spool (here the restart only drains).
    from exporters.storage import open_storage

    storage = open_storage(f"az://{container_name}/data", **config["exporter"]["storage_options"])
    assert storage.drain(60)  # type: ignore[attr-defined]
    storage.close()
    frame = load(azurite.connection_string, container_name, "model_inputs")
    counts = collections.Counter(frame["key"])
    lost = sorted(flushed - set(counts))
    duplicated = sorted(k for k, c in counts.items() if c > 1)
    print(f"runs={runs} flushed={len(flushed)} stored={len(frame)} "
          f"lost={len(lost)} duplicated={len(duplicated)}")
    assert not lost and not duplicated, (lost[:10], duplicated[:10])
    assert len(flushed) >= runs * 10 * 7


def test_outage_all_records_arrive_and_scoring_is_not_held_up(
        azurite_factory, container_name: str, tmp_path: Path, wait_for) -> None:
    server = azurite_factory()
    bound = 8 << 20
    pipeline = oce.configure(blob_config(server.connection_string, container_name,
                                         tmp_path / "spool", spool_max_bytes=bound,
                                         connect_timeout=1))
    storage = pipeline.exporter.storage  # type: ignore[attr-defined]
    c = Collector(name="model_inputs")
    payload = "p" * 2000

    def collect(start: int, count: int) -> None:
        for i in range(start, start + count):
            c.collect(pd.DataFrame({"i": [i], "payload": [payload]}))
            if i % 50 == 49:
                began = time.monotonic()
                assert oce.flush()
                assert time.monotonic() - began < 5  # flush never waits for the network

    collect(0, 200)
    assert storage.drain(20)
    server.stop()
    rss_before = psutil.Process().memory_info().rss
    peak = 0
    for start in range(200, 1200, 100):
        collect(start, 100)
        peak = max(peak, storage.stats()["spool_bytes"])
    rss_growth = psutil.Process().memory_info().rss - rss_before
    assert storage.stats()["spool_ops"] > 0
    # The uploader has tried, and says why it could not upload (its next try may still
    # be on its way: wait for the message rather than assume it).
    wait_for(lambda: "cannot reach" in (storage.stats()["last_error"] or ""), 20,
             "the spool to report that storage cannot be reached")
    server.start()
    oce.shutdown()  # drains the spool into the restarted Azurite
    frame = oce.load(f"az://{container_name}/data", endpoint="ep", deployment="blue",
                     collection="model_inputs",
                     storage_options={"connection_string": server.connection_string,
                                      "spool": False})
    assert sorted(frame["i"]) == list(range(1200))
    assert 0 < peak <= bound
    assert rss_growth < 64 << 20, rss_growth
    print(f"outage: records=1200 peak_spool={peak} bound={bound} rss_growth={rss_growth}")


def test_restart_during_outage_continues_after_files_written_before(
        azurite_factory, container_name: str, tmp_path: Path) -> None:
    server = azurite_factory()
    config = blob_config(server.connection_string, container_name, tmp_path / "spool",
                         connect_timeout=1)
    c = Collector(name="model_inputs")
    oce.configure(config)
    for i in range(100):
        c.collect(pd.DataFrame({"i": [i]}))
    oce.shutdown()  # everything uploaded, the spool is empty
    server.stop()
    oce.configure(config)  # a new process start, storage unreachable
    for i in range(100, 200):
        c.collect(pd.DataFrame({"i": [i]}))
    assert oce.flush()
    server.start()
    oce.shutdown()
    frame = oce.load(f"az://{container_name}/data", endpoint="ep", deployment="blue",
                     collection="model_inputs",
                     storage_options={"connection_string": server.connection_string,
                                      "spool": False})
    assert sorted(frame["i"]) == list(range(200))
    names = [b.name.rsplit("/", 1)[1]
             for b in server.service().get_container_client(container_name).list_blobs()
             if "/_schema/" not in b.name and not b.name.endswith(PROFILE_SUFFIX)]
    assert sorted(names) == ["replica-1.0000.avro", "replica-1.0001.avro"]


def _secrets_absent(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("failure", ["wrong_key", "no_create_permission", "unreachable"])
def test_storage_failures_are_clear_and_scoring_keeps_running(
        azurite: Azurite, container_name: str, tmp_path: Path, failure: str, wait_for,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    conn: str | None = azurite.connection_string
    destination = None
    if failure == "wrong_key":
        wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc9PQ=="
        conn = azurite.connection_string.replace(azurite.ACCOUNT_KEY, wrong)
        secrets = [wrong, conn]
        expected = "access denied"
    elif failure == "no_create_permission":
        token = generate_account_sas(
            azurite.ACCOUNT, azurite.ACCOUNT_KEY, ResourceTypes(object=True),
            AccountSasPermissions(read=True, write=True, add=True, create=True, list=True),
            expiry=pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1))
        destination = f"{azurite.account_url}/{container_name}/data?{token}"
        conn = None
        secrets = [token, re.search(r"sig=([^&]+)", token).group(1)]  # type: ignore[union-attr]
        expected = "may not create"
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conn = azurite.connection_string.replace(str(azurite.port), str(port))
        secrets = [azurite.ACCOUNT_KEY]
        expected = "cannot reach"
    pipeline = oce.configure(blob_config(conn, container_name, tmp_path / "spool",
                                         destination=destination, connect_timeout=1))
    storage = pipeline.exporter.storage  # type: ignore[attr-defined]
    c = Collector(name="model_inputs")
    for i in range(20):
        c.collect(pd.DataFrame({"i": [i]}))  # never raises into scoring code
    assert oce.flush()  # accepted: spooled durably, waiting for storage to work
    wait_for(lambda: expected in (storage.stats()["last_error"] or ""),
             message=f"the upload error ({expected})")
    stats = storage.stats()
    assert stats["retries"] >= 1 and stats["spool_ops"] >= 1 and stats["dropped_total"] == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(expected in r.getMessage() for r in errors)
    text = "\n".join([r.getMessage() for r in caplog.records] + [repr(storage), str(stats)])
    _secrets_absent(text, secrets)
    storage.close(timeout=0)


def test_partition_values_that_are_unsafe_names_are_escaped_or_rejected(
        azurite: Azurite, container_name: str) -> None:
    from exporters.avro.exporter import AvroLogExporter

    exporter = AvroLogExporter(f"az://{container_name}/names", instance_id="n",
                               storage_options={"connection_string": azurite.connection_string,
                                                "spool": False})
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("t")
    values = ["../../outside", "a/b", "sp ace", "x\u0085y", "v1.", "..", "ok"]
    for value in values:
        logger.emit(body="hello", timestamp=T0 * 10**9,
                    attributes={A.COLLECTION: "c", A.ENDPOINT: value, A.DEPLOYMENT: "d",
                                A.PAYLOAD_KIND: A.KIND_TEXT})
    provider.shutdown()
    names = [b.name for b in azurite.service().get_container_client(container_name).list_blobs()]
    for name in names:
        assert name.startswith("names/") and ".." not in name.split("/")
        assert not any(segment.endswith(".") for segment in name.split("/"))
    written = {name.split("/")[1] for name in names}
    dropped = exporter.tally.get("records.dropped")
    print(f"names: written={sorted(written)} dropped={dropped}")
    assert "ok" in written
    assert len(written) + dropped == len(values)  # each value escaped or rejected, counted
