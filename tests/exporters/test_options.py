"""Exporter and storage options: argument, then environment variable, then default, in one
model per component; a bad value names the option or the variable it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.avro.exporter import AvroLogExporter
from exporters.avro.options import AvroExporterOptions
from exporters.otlp.options import OtlpExporterOptions
from exporters.registry import create_exporter
from exporters.settings import AVRO_ENV_PREFIX, DEFAULT_CODEC, DEFAULT_MAX_FILE_BYTES
from exporters.storage import open_storage


def test_avro_options_come_from_the_argument_then_the_environment_then_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AVRO_ENV_PREFIX + "CODEC", raising=False)
    assert AvroLogExporter(str(tmp_path)).writer.codec == DEFAULT_CODEC
    monkeypatch.setenv(AVRO_ENV_PREFIX + "CODEC", "null")
    monkeypatch.setenv(AVRO_ENV_PREFIX + "ROLLING_RATE", "Day")
    from_env = AvroLogExporter(str(tmp_path))
    assert (from_env.writer.codec, from_env.rolling_rate) == ("null", "day")
    given = AvroLogExporter(str(tmp_path), codec="deflate", rolling_rate="minute")
    assert (given.writer.codec, given.rolling_rate) == ("deflate", "minute")
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_DESTINATION", str(tmp_path / "env"))
    assert AvroLogExporter().destination == str(tmp_path / "env")


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AVRO_ENV_PREFIX + "MAX_FILE_BYTES", "big")
    with pytest.raises(ValueError, match=rf"{AVRO_ENV_PREFIX}MAX_FILE_BYTES='big': "
                                         "max_file_bytes must be a number of bytes"):
        AvroExporterOptions.resolve({})
    assert AvroExporterOptions.resolve({"max_file_bytes": 2048}).max_file_bytes == 2048
    monkeypatch.delenv(AVRO_ENV_PREFIX + "MAX_FILE_BYTES")
    assert AvroExporterOptions.resolve({}).max_file_bytes == DEFAULT_MAX_FILE_BYTES


def test_otlp_protocol_resolution_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert OtlpExporterOptions.resolve({}).protocol == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert OtlpExporterOptions.resolve({}).protocol == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", " GRPC ")
    assert OtlpExporterOptions.resolve({}).protocol == "grpc"  # the logs-specific one wins
    assert OtlpExporterOptions.resolve({"protocol": "http/protobuf"}).protocol == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "udp")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_LOGS_PROTOCOL='udp'"):
        OtlpExporterOptions.resolve({})


def test_a_configuration_block_is_checked_against_the_exporters_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"exporters\.avro\.max_file_bytes must be a number "
                                         r"of bytes from 1 to \d+, not '1GB'"):
        create_exporter({"type": "avro", "destination": str(tmp_path), "max_file_bytes": "1GB"},
                        key="exporters.avro")
    # Objects such as `storage` are for code: a file cannot name one.
    with pytest.raises(ValueError, match=r"unknown option for exporter 'avro': exporter\.storage"):
        create_exporter({"type": "avro", "destination": str(tmp_path), "storage": "local"})
    with pytest.raises(ValueError, match=r"exporter\.timeout must be a number of seconds"):
        create_exporter({"type": "otlp", "timeout": -1})


def test_storage_options_are_checked_by_the_backends_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"storage_options\.fsync must be true or false"):
        open_storage(str(tmp_path), fsync="yes")
    with pytest.raises(ValueError, match=r"unknown key storage_options\.mode"):
        open_storage(str(tmp_path), mode="roll")
    assert open_storage(str(tmp_path), fsync=True).fsync is True
    with pytest.raises(ValueError, match=r"storage_options\.spool_full_policy must be one of "
                                         "drop, block, not 'wait'"):
        open_storage("az://container", connection_string="UseDevelopmentStorage=true",
                     spool_full_policy="wait")
