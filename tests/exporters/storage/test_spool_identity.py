"""A spool belongs to one account, container and prefix: never uploaded elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.storage import open_storage

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, azurite_factory, container_name


def test_same_destination_text_of_two_accounts_gets_two_spools(
        azurite_factory, container_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_SPOOL_DIR", str(tmp_path / "spools"))
    first, second = azurite_factory(), azurite_factory()
    a = open_storage(f"az://{container_name}", connection_string=first.connection_string)
    b = open_storage(f"az://{container_name}", connection_string=second.connection_string)
    try:
        assert a.root != b.root  # type: ignore[attr-defined]
        a.append("x/a.bin", b"for the first account", expected_size=0)
        b.append("x/b.bin", b"for the second account", expected_size=0)
        assert a.drain(20) and b.drain(20)  # type: ignore[attr-defined]
        assert [o.path for o in a.list("x/")] == ["x/a.bin"]
        assert [o.path for o in b.list("x/")] == ["x/b.bin"]
    finally:
        a.close()
        b.close()


def test_a_spool_dir_of_another_destination_is_refused(
        azurite, container_name: str, tmp_path: Path) -> None:
    spool = tmp_path / "shared"
    first = open_storage(f"az://{container_name}/one", connection_string=azurite.connection_string,
                         spool_dir=str(spool))
    first.close()
    with pytest.raises(ValueError, match="another destination"):
        open_storage(f"az://{container_name}/two", connection_string=azurite.connection_string,
                     spool_dir=str(spool))
    # the same destination takes it back, as after a restart
    again = open_storage(f"az://{container_name}/one", connection_string=azurite.connection_string,
                         spool_dir=str(spool))
    again.close()
    assert "AccountKey" not in (spool / "DESTINATION").read_text()


def test_listing_during_an_outage_does_not_wait_for_the_network(
        azurite_factory, container_name: str, tmp_path: Path, wait_for,
        caplog: pytest.LogCaptureFixture) -> None:
    server = azurite_factory()
    storage = open_storage(f"az://{container_name}", connection_string=server.connection_string,
                           spool_dir=str(tmp_path / "spool"), connect_timeout=5)
    try:
        storage.append("old/a.avro", b"before", expected_size=0)
        assert storage.drain(20)  # type: ignore[attr-defined]
        server.stop()
        storage.append("old/a.avro", b" during", expected_size=6)
        wait_for(lambda: storage.stats()["last_error"], 30, "the uploader to notice the outage")
        with caplog.at_level("WARNING"):
            names = [o.path for o in storage.list("old/")]
        assert names == ["old/a.avro"]  # from what the spool remembers
        assert "storage is failing" in caplog.text  # answered without asking the network
    finally:
        server.start()
        storage.close()
