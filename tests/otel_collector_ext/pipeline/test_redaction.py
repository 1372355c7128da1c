"""Redaction: configured fields and columns are masked or hashed before records leave.

Also the configuration keys that payload logging adds (`data_collector.request_logging`
options and the `redaction:` block).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import otel_collector_ext as oce
from examples import flask_app  # a test dependency: missing flask fails, never skips
from otel_collector_ext import Collector, ConfigError
from otel_collector_ext.pipeline.config import DEFAULT_INLINE_LIMIT_BYTES, parse_config
from otel_collector_ext.pipeline.redaction import parse_path
from tests.conftest import local_config
from tests.otel_collector_ext.middleware.test_middleware_asgi import COLLECTIONS
from tests.support.middleware_servers import serve_wsgi

KEY = "k3y-for-tests"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def keyed(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def redacting(data_dir: Path, **redaction: Any) -> dict[str, Any]:
    return local_config(
        data_dir,
        data_collector={"collections": {name: {"enabled": True} for name in
                                        (*COLLECTIONS, "custom")}},
        redaction=redaction,
    )


def load(data_dir: Path, collection: str) -> pd.DataFrame:
    assert oce.flush()
    return oce.load(str(data_dir), endpoint="ep", deployment="blue", collection=collection)


# -- configuration -----------------------------------------------------------


def test_payload_logging_keys_have_defaults_and_are_validated() -> None:
    config = parse_config({})
    assert (config.capture_query, config.inline_limit_bytes) == (False, DEFAULT_INLINE_LIMIT_BYTES)
    assert config.max_body_bytes == 16 * 1024 * 1024 and config.redaction is None
    config = parse_config({"data_collector": {"request_logging": {
        "capture_headers": ["X-Client", "Authorization", "COOKIE", "Set-Cookie", "x-api-key"],
        "capture_query": "True", "inline_limit_bytes": 1024, "max_body_bytes": 0}}})
    assert config.capture_headers == ("x-client",)
    assert config.capture_query is True
    assert (config.inline_limit_bytes, config.max_body_bytes) == (1024, 0)


@pytest.mark.parametrize(
    ("request_logging", "key"),
    [
        ({"capture_query": "yes"}, "data_collector.request_logging.capture_query"),
        ({"inline_limit_bytes": -1}, "data_collector.request_logging.inline_limit_bytes"),
        ({"max_body_bytes": "16MB"}, "data_collector.request_logging.max_body_bytes"),
        ({"max_body_bytes": 2**40}, "data_collector.request_logging.max_body_bytes"),
        ({"max_body_bytes": True}, "data_collector.request_logging.max_body_bytes"),
        ({"capture_headers": "x-client"}, "data_collector.request_logging.capture_headers"),
        ({"capture_body": True}, "data_collector.request_logging.capture_body"),
    ],
)
def test_bad_payload_logging_keys_are_named(request_logging: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({"data_collector": {"request_logging": request_logging}})


@pytest.mark.parametrize(
    ("redaction", "key"),
    [
        ({"mask": {"fields": "a.b"}}, "redaction.mask.fields"),
        ({"hash": {"columns": [""]}}, "redaction.hash.columns"),
        ({"mask": {"paths": ["a"]}}, "redaction.mask.paths"),
        ({"mask": ["a"]}, "redaction.mask"),
        ({"mask_value": 0, "mask": {"columns": ["a"]}}, "redaction.mask_value"),
        ({"hash": {"columns": ["a"]}, "hash_key_env": "OCE_TEST_UNSET_KEY"},
         "redaction.hash_key_env"),
        ({"mask": {"fields": ["a..b"]}}, "redaction"),
        ({}, "redaction"),
        ({"drop": {"columns": ["a"]}}, "redaction.drop"),
    ],
)
def test_bad_redaction_keys_are_named(redaction: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({"redaction": redaction})


def test_field_paths_parse() -> None:
    assert parse_path("$.customer.email") == ("customer", "email")
    assert parse_path('meta["a.b"][2]')[1:] == ("a.b", 2)
    for bad in ("", "$", "a..b", "a[", "a]"):
        with pytest.raises(ValueError):
            parse_path(bad)


# -- custom logging -------------------------------------------------------------


def test_dataframe_columns_are_masked_or_hashed_and_the_callers_frame_kept(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCE_TEST_KEY", KEY)
    oce.configure(redacting(data_dir, mask={"columns": ["email"]},
                            hash={"columns": ["user_id"]}, hash_key_env="OCE_TEST_KEY"))
    frame = pd.DataFrame({"email": ["a@x.org", None], "user_id": [17, 18], "age": [30, 40]})
    before = frame.copy()
    context = Collector(name="model_inputs").collect(frame)
    assert frame.equals(before)
    got = load(data_dir, "model_inputs")
    assert got["email"].tolist()[0] == "***" and pd.isna(got["email"].tolist()[1])
    assert got["user_id"].tolist() == [keyed("17"), keyed("18")]
    assert got["age"].tolist() == [30, 40]
    assert (got["_correlation_id"] == context.get_id()).all()


def test_records_and_nested_fields_are_redacted_without_touching_the_callers_data(
    data_dir: Path,
) -> None:
    oce.configure(redacting(data_dir, mask={"fields": ["card.number", "items[*].secret"]},
                            hash={"columns": ["email"]}))
    card = {"number": "4111-1111", "brand": "visa"}
    rows = [{"email": "a@x.org", "card": card, "n": 1}]
    custom = Collector(name="custom")
    custom.collect(rows)
    assert rows[0]["email"] == "a@x.org" and card["number"] == "4111-1111"
    nested = {"items": [{"secret": "s1", "keep": 1}, {"secret": "s2"}], "other": "x"}
    custom.collect(nested)  # not tabular: a JSON payload
    assert nested["items"][0]["secret"] == "s1"
    custom.collect('{"card": {"number": "5500"}}')  # JSON text
    custom.collect("plain text mentioning card.number stays as it is")
    frame = load(data_dir, "custom")
    tabular = frame[frame["email"].notna()]
    assert tabular["email"].tolist() == [sha("a@x.org")]
    payloads = frame[frame["body"].notna()]["body"].tolist()
    assert json.loads(payloads[0]) == {"items": [{"secret": "***", "keep": 1},
                                                 {"secret": "***"}], "other": "x"}
    assert json.loads(payloads[1]) == {"card": {"number": "***"}}
    assert payloads[2] == b"plain text mentioning card.number stays as it is"
    assert "4111" not in repr(frame.to_dict())


# -- payload logging over HTTP ------------------------------------------------------


@pytest.fixture
def redacted_server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OCE_TEST_KEY", KEY)
    config = redacting(
        data_dir,
        mask={"fields": ["customer.email", "scores"], "columns": ["email"]},
        hash={"columns": ["income"], "fields": ["customer.id"]},
        hash_key_env="OCE_TEST_KEY",
    )
    config["data_collector"]["request_logging"] = {"max_body_bytes": 200}
    oce.configure(config)
    with serve_wsgi(flask_app.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_http_bodies_and_custom_logging_are_redacted_alike(
    redacted_server: httpx.Client, data_dir: Path
) -> None:
    client = redacted_server
    body = {"columns": ["age", "income"], "data": [[30, 1000]],
            "customer": {"email": "a@x.org", "id": "c-42"}}
    assert client.post("/score", json=body, headers={"x-request-id": "r-json"}).status_code == 200
    csv = b"age,income,email\n30,1000,a@x.org\n"
    assert client.post("/score/csv", content=csv, headers={
        "x-request-id": "r-csv", "content-type": "text/csv"}).status_code == 200
    cut = json.dumps({"customer": {"email": "a@x.org"}, "pad": "p" * 400}).encode()
    client.post("/score", content=cut, headers={"x-request-id": "r-cut",
                                                "content-type": "application/json"})
    requests = load(data_dir, "request").set_index("_correlation_id")
    responses = load(data_dir, "response").set_index("_correlation_id")
    inputs = load(data_dir, "model_inputs")

    recorded = json.loads(requests.loc["r-json", "body"])
    assert recorded["customer"] == {"email": "***", "id": keyed("c-42")}
    assert recorded["data"] == [[30, 1000]] and "redacted" in requests.loc["r-json", "flags"]
    assert json.loads(responses.loc["r-json", "body"]) == {"scores": "***"}

    assert requests.loc["r-csv", "body"] == f"age,income,email\n30,{keyed('1000')},***\n".encode()
    # the same value hashes alike in an HTTP body and in a DataFrame column: joinable
    csv_inputs = inputs[inputs["_correlation_id"] == "r-csv"]
    assert csv_inputs["income"].tolist() == [keyed("1000")]
    assert csv_inputs["email"].tolist() == ["***"]

    # A JSON body cut at max_body_bytes cannot be parsed: dropped, not recorded unredacted.
    truncated = requests.loc["r-cut"]
    assert truncated["truncated"] and truncated["body_size"] == len(cut)
    assert truncated["body"] == b"" and "redaction_failed" in truncated["flags"]
    everything = repr({c: load(data_dir, c).to_dict() for c in COLLECTIONS})
    assert "a@x.org" not in everything and "c-42" not in everything
