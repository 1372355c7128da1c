"""BlobStorage against Azurite, the real storage emulator (no mocked Blob client)."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobBlock,
    BlockState,
    ResourceTypes,
    generate_account_sas,
)

from exporters.storage import AppendConflict, StorageError, open_storage
from exporters.storage.blob import (
    MAX_BLOCK_BYTES,
    BlobStorage,
    RetryPolicy,
    _block_id,
    check_blob_name,
    parse_destination,
)
from tests.support.certs import self_signed_cert

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name

ACCOUNT = "devstoreaccount1"
# Azurite's fixed, publicly documented development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, deadline=5)
MODES = ["append", "roll"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blob_storage(azurite: Azurite, container: str, prefix: str = "", **kw) -> BlobStorage:
    dest = f"az://{container}/{prefix}" if prefix else f"az://{container}"
    kw.setdefault("retry", FAST)
    return BlobStorage(dest, connection_string=azurite.connection_string, **kw)


def sas(permissions: AccountSasPermissions, resource_types: ResourceTypes) -> str:
    return generate_account_sas(ACCOUNT, ACCOUNT_KEY, resource_types, permissions,
                                expiry=datetime.now(UTC) + timedelta(hours=1))


@pytest.mark.parametrize("mode", MODES)
def test_round_trip(azurite: Azurite, container_name: str, mode: str) -> None:
    s = blob_storage(azurite, container_name, "pre/fix", mode=mode)
    path = "ep/dep/inputs/2026/11/24/13/host.0000.avro"
    assert s.size(path) is None
    assert list(s.list()) == []  # container does not exist yet: nothing, no error
    assert s.append(path, b"header+block1", expected_size=0) == 13
    assert s.append(path, b"|block2", expected_size=13) == 20
    s.put("ep/dep/inputs/2026/11/24/13/host.bodies/abc.bin", b"\x00" * 100)
    s.put("ep/dep/inputs/2026/11/24/13/host.bodies/abc.bin", b"\x01" * 50)  # replaces
    assert s.read(path) == b"header+block1|block2"
    assert s.size(path) == 20
    assert s.read_range(path, 7, 6) == b"block1"
    assert [(o.path, o.size) for o in s.list("ep/dep/")] == [
        ("ep/dep/inputs/2026/11/24/13/host.0000.avro", 20),
        ("ep/dep/inputs/2026/11/24/13/host.bodies/abc.bin", 50),
    ]
    assert [o.path for o in s.list("ep/dep/inputs/2026/11/24/13/host.0")] == [path]
    assert list(s.list("other/")) == []
    with pytest.raises(FileNotFoundError):
        s.read("ep/missing.avro")
    # The prefix is really part of the blob name.
    names = [b.name for b in azurite.service().get_container_client(container_name).list_blobs()]
    assert f"pre/fix/{path}" in names
    props = azurite.service().get_blob_client(container_name, f"pre/fix/{path}").get_blob_properties()
    assert props.blob_type == ("AppendBlob" if mode == "append" else "BlockBlob")
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_large_append_spans_several_blocks(azurite: Azurite, container_name: str, mode: str) -> None:
    s = blob_storage(azurite, container_name, mode=mode)
    data = os.urandom(MAX_BLOCK_BYTES + 1000)
    assert s.append("big.avro", b"h", expected_size=0) == 1
    assert s.append("big.avro", data, expected_size=1) == 1 + len(data)
    assert s.read("big.avro") == b"h" + data


@pytest.mark.parametrize("mode", MODES)
def test_append_position_conflict_reports_real_size(azurite: Azurite, container_name: str,
                                                    mode: str) -> None:
    s = blob_storage(azurite, container_name, mode=mode)
    s.append("a.avro", b"0123456789", expected_size=0)
    with pytest.raises(AppendConflict) as info:
        s.append("a.avro", b"xyz", expected_size=4)
    assert info.value.actual_size == 10
    assert info.value.transient is False
    with pytest.raises(AppendConflict) as info:
        s.append("absent.avro", b"xyz", expected_size=4)
    assert info.value.actual_size == 0
    # A new file whose name is taken: the conflict says how long the existing one is.
    with pytest.raises(AppendConflict) as info:
        s.append("a.avro", b"abc", expected_size=0)
    assert info.value.actual_size == 10
    assert s.read("a.avro") == b"0123456789"


def test_retry_after_lost_append_response_writes_no_duplicate(azurite: Azurite,
                                                              container_name: str) -> None:
    s = blob_storage(azurite, container_name)
    s.append("f.avro", b"HEADER", expected_size=0)
    blob = azurite.service().get_blob_client(container_name, "f.avro")
    # The append reaches the service but its response is lost...
    blob.append_block(b"BLOCK-1", appendpos_condition=6)
    # ...so the writer retries with the size it knew.
    assert s.append("f.avro", b"BLOCK-1", expected_size=6) == 13
    assert s.read("f.avro") == b"HEADERBLOCK-1"
    assert blob.get_blob_properties().append_blob_committed_block_count == 2
    # Same length but other bytes at that position is a real conflict, not "done".
    blob.append_block(b"OTHER-2", appendpos_condition=13)
    with pytest.raises(AppendConflict) as info:
        s.append("f.avro", b"BLOCK-2", expected_size=13)
    assert info.value.actual_size == 20
    assert s.read("f.avro") == b"HEADERBLOCK-1OTHER-2"


def test_retry_after_partial_multi_block_append_resumes(azurite: Azurite, container_name: str) -> None:
    s = blob_storage(azurite, container_name)
    data = os.urandom(MAX_BLOCK_BYTES + 5000)
    s.append("m.avro", b"H", expected_size=0)
    blob = azurite.service().get_blob_client(container_name, "m.avro")
    # The first block of a two-block append landed before the process died.
    blob.append_block(data[:MAX_BLOCK_BYTES], appendpos_condition=1)
    assert s.append("m.avro", data, expected_size=1) == 1 + len(data)
    assert s.read("m.avro") == b"H" + data
    assert blob.get_blob_properties().append_blob_committed_block_count == 3


def test_roll_mode_retry_after_lost_commit_writes_no_duplicate(azurite: Azurite,
                                                               container_name: str) -> None:
    s = blob_storage(azurite, container_name, mode="roll")
    s.append("r.avro", b"HEADER", expected_size=0)
    blob = azurite.service().get_blob_client(container_name, "r.avro")
    # The commit of "BLOCK-1" reached the service, its response was lost.
    committed = [b.id for b in blob.get_block_list("committed")[0]]
    new = _block_id(6, b"BLOCK-1")
    blob.stage_block(new, b"BLOCK-1")
    blob.commit_block_list([BlobBlock(i, BlockState.COMMITTED) for i in committed]
                           + [BlobBlock(new, BlockState.UNCOMMITTED)])
    assert s.append("r.avro", b"BLOCK-1", expected_size=6) == 13
    assert s.read("r.avro") == b"HEADERBLOCK-1"
    assert len(blob.get_block_list("committed")[0]) == 2
    with pytest.raises(AppendConflict):
        s.append("r.avro", b"BLOCK-9", expected_size=6)  # same size, other data


def test_wrong_blob_type_is_an_object_level_error(azurite: Azurite, container_name: str) -> None:
    from exporters.storage.blob import BlobObjectError

    append = blob_storage(azurite, container_name)
    roll = blob_storage(azurite, container_name, mode="roll")
    append.put("whole.bin", b"written in one request")
    with pytest.raises(BlobObjectError):
        append.append("whole.bin", b"x", expected_size=22)
    with pytest.raises(BlobObjectError, match="not written in blocks"):
        roll.append("whole.bin", b"x", expected_size=22)
    append.append("appendblob.avro", b"a", expected_size=0)
    with pytest.raises(BlobObjectError, match="not a block blob"):
        roll.append("appendblob.avro", b"b", expected_size=1)
    assert append.read("whole.bin") == b"written in one request"


@pytest.mark.parametrize("name", [
    "a/../b.avro", "/abs.avro", "a//b.avro", "a\\b.avro", "a/b./c.avro", "trailing.",
    "a/\udc80.avro", "a/\u0085.avro", "x" * 1100, "/".join(["s"] * 300), "a/b?.avro", "",
])
def test_invalid_blob_names_are_rejected(azurite: Azurite, container_name: str, name: str) -> None:
    s = blob_storage(azurite, container_name)
    with pytest.raises(ValueError):
        s.append(name, b"x", expected_size=0)
    with pytest.raises(ValueError):
        s.put(name, b"x")
    with pytest.raises(ValueError):
        check_blob_name(name)
    assert list(s.list()) == []  # nothing was written anywhere


@pytest.mark.parametrize("destination", [
    "az://UPPER", "az://ab", "az://a--b", "az://-ab", "az://" + "a" * 64, "az://ok-name/bad./x",
    "https://acct.blob.core.windows.net/", "https://acct.blob.core.windows.net/Bad_Name",
    "s3://bucket/x",
])
def test_invalid_destinations_are_rejected(destination: str) -> None:
    with pytest.raises(ValueError):
        BlobStorage(destination, connection_string="AccountName=a;AccountKey=a2V5")


def test_destination_forms() -> None:
    d = parse_destination("az://models/prod/scoring")
    assert (d.container, d.prefix, d.account_url) == ("models", "prod/scoring/", None)
    d = parse_destination("https://acct.blob.core.windows.net/data/p?sv=1&sig=SECRET")
    assert (d.container, d.prefix, d.account_url, d.sas_token) == (
        "data", "p/", "https://acct.blob.core.windows.net", "sv=1&sig=SECRET")
    d = parse_destination("http://127.0.0.1:10000/devstoreaccount1/data")
    assert (d.container, d.prefix, d.account_url) == ("data", "", "http://127.0.0.1:10000/devstoreaccount1")


def _all_text(exc: BaseException, storage: BlobStorage | None, caplog: pytest.LogCaptureFixture) -> str:
    parts = [str(exc), repr(exc), " ".join(map(str, exc.args))]
    if storage is not None:
        parts += [repr(storage), storage.describe()]
    parts += [r.getMessage() for r in caplog.records]
    parts += [str(r.args) for r in caplog.records]
    return "\n".join(parts)


def test_wrong_account_key_is_a_clear_permanent_error_without_the_key(
        azurite: Azurite, container_name: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc9PQ=="
    conn = azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)
    caplog.set_level(logging.DEBUG)
    s = BlobStorage(f"az://{container_name}", connection_string=conn, retry=FAST)
    with pytest.raises(StorageError) as info:
        s.append("a.avro", b"x", expected_size=0)
    assert info.value.transient is False
    assert "access denied" in str(info.value) and "403" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    text = _all_text(info.value, s, caplog)
    assert wrong_key not in text and conn not in text
    assert wrong_key[:20] not in text


def test_sas_without_create_permission_on_missing_container(
        azurite: Azurite, container_name: str, caplog: pytest.LogCaptureFixture) -> None:
    # An account SAS for objects only: it may write blobs but not create containers.
    token = sas(AccountSasPermissions(read=True, write=True, add=True, create=True, list=True),
                ResourceTypes(object=True))
    caplog.set_level(logging.DEBUG)
    s = BlobStorage(f"{azurite.account_url}/{container_name}/p", sas_token=token, retry=FAST)
    with pytest.raises(StorageError) as info:
        s.append("a.avro", b"x", expected_size=0)
    message = str(info.value)
    assert info.value.transient is False
    assert f"container {container_name!r} does not exist" in message and "may not create" in message
    text = _all_text(info.value, s, caplog)
    signature = [p for p in token.split("&") if p.startswith("sig=")][0][4:]
    assert token not in text and signature not in text
    # With the container in place the same SAS works, and the SAS in the URL is never shown.
    azurite.service().create_container(container_name)
    s2 = BlobStorage(f"{azurite.account_url}/{container_name}/p?{token}", retry=FAST)
    assert s2.append("a.avro", b"x", expected_size=0) == 1
    assert signature not in repr(s2) and "sig=" not in s2.describe()


def test_container_is_created_when_permitted(azurite: Azurite, container_name: str) -> None:
    token = sas(AccountSasPermissions(read=True, write=True, add=True, create=True, list=True),
                ResourceTypes(container=True, object=True))
    s = BlobStorage(f"{azurite.account_url}/{container_name}", sas_token=token, retry=FAST)
    s.put("x.bin", b"1")
    assert azurite.service().get_container_client(container_name).exists()


def test_create_container_off_reports_missing_container(azurite: Azurite, container_name: str) -> None:
    s = blob_storage(azurite, container_name, create_container=False)
    with pytest.raises(StorageError, match="does not exist") as info:
        s.put("x.bin", b"1")
    assert info.value.transient is False


def test_account_key_option_with_account_url(azurite: Azurite, container_name: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    s = BlobStorage(f"{azurite.account_url}/{container_name}", account_key=ACCOUNT_KEY, retry=FAST)
    assert s.append("k.avro", b"abc", expected_size=0) == 3
    assert ACCOUNT_KEY not in repr(s)


def test_unreachable_endpoint_is_transient_and_clear(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")
    caplog.set_level(logging.DEBUG)
    s = BlobStorage("az://nowhere", connection_string=conn, retry=FAST, connect_timeout=2)
    with pytest.raises(StorageError) as info:
        s.append("a.avro", b"x", expected_size=0)
    assert info.value.transient is True
    assert f"cannot reach http://127.0.0.1:{port}" in str(info.value)
    assert s.stats()["retries"] == 1
    assert ACCOUNT_KEY not in _all_text(info.value, s, caplog)


def test_options_of_the_other_destination_form_are_refused() -> None:
    with pytest.raises(ValueError, match="https:// destinations"):
        BlobStorage("az://data", connection_string="AccountName=a;AccountKey=a2V5", sas_token="sv=1")
    with pytest.raises(ValueError, match="az:// destinations"):
        BlobStorage("https://acct.blob.core.windows.net/data", connection_string="AccountName=a")


def test_missing_connection_string_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(ValueError, match="AZURE_STORAGE_CONNECTION_STRING"):
        BlobStorage("az://data")


def test_connection_string_from_environment(azurite: Azurite, container_name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    s = open_storage(f"az://{container_name}/env", spool=False)
    s.put("a.bin", b"z")
    assert s.read("a.bin") == b"z"
    assert ACCOUNT_KEY not in repr(s)


def test_account_url_alone_uses_default_azure_credential_lazily() -> None:
    # Built without touching the network (no identity endpoint is called here).
    s = BlobStorage("https://someaccount.blob.core.windows.net/data/prefix")
    assert type(s._owned_credential).__name__ == "DefaultAzureCredential"
    assert s.describe() == ("az://data/prefix/ (append blobs, account someaccount at "
                            "https://someaccount.blob.core.windows.net)")
    s.close()


def test_missing_azure_identity_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with pytest.raises(ValueError, match="pip install azure-identity"):
        BlobStorage("https://someaccount.blob.core.windows.net/data")


def test_open_storage_dispatch(azurite: Azurite, container_name: str, tmp_path) -> None:
    s = open_storage(f"az://{container_name}", connection_string=azurite.connection_string,
                     spool=False)
    assert isinstance(s, BlobStorage)
    spooled = open_storage(f"az://{container_name}", connection_string=azurite.connection_string,
                           spool_dir=str(tmp_path / "spool"), mode="roll")
    try:
        assert type(spooled).__name__ == "SpooledStorage"
        assert spooled.window_seconds == 300.0  # roll mode's default window
        assert spooled.max_appends == 45_000
    finally:
        spooled.close()
    with pytest.raises(ValueError, match="unknown Blob storage option"):
        open_storage(f"az://{container_name}", connection_string=azurite.connection_string,
                     spool=False, acount_key="typo")
    with pytest.raises(ValueError, match="mode"):
        open_storage(f"az://{container_name}", connection_string=azurite.connection_string,
                     spool=False, mode="page")


# -- Microsoft Entra ID tokens -------------------------------------------------------------
# Azurite checks bearer tokens ("--oauth basic": issuer, audience, lifetime; no signature)
# over HTTPS. The only stand-in is the cloud identity endpoint: a local HTTP server that
# answers like App Service's managed identity endpoint (IDENTITY_ENDPOINT/IDENTITY_HEADER),
# so the real DefaultAzureCredential → ManagedIdentityCredential code path runs.




def _unsigned_jwt(audience: str) -> str:
    import base64
    import json
    import time

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"aud": audience, "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
              "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "oid": "test-identity"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """A stand-in for the App Service managed identity endpoint; yields the requests it got."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlparse

    seen: list[dict] = []
    state = {"audience": "https://storage.azure.com"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlparse(self.path).query)
            seen.append({"query": query, "header": self.headers.get("X-IDENTITY-HEADER")})
            body = json.dumps({"access_token": _unsigned_jwt(state["audience"]),
                               "expires_on": str(int(time.time()) + 3600),
                               "resource": query.get("resource", [""])[0],
                               "token_type": "Bearer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "MSI_ENDPOINT", "MSI_SECRET",
                 "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_port}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "stand-in-header-secret")
    yield seen, state
    server.shutdown()
    server.server_close()


def test_default_azure_credential_authenticates_with_a_token(
        azurite_factory, container_name: str, tmp_path, identity_endpoint,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    seen, state = identity_endpoint
    cert, key = self_signed_cert(tmp_path)
    server = azurite_factory(tls=(cert, key), oauth=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust the emulator's certificate
    caplog.set_level(logging.DEBUG)
    # Only the account URL: DefaultAzureCredential (here: its managed identity link).
    s = BlobStorage(f"{server.account_url}/{container_name}/mi", retry=FAST)
    assert type(s._owned_credential).__name__ == "DefaultAzureCredential"
    assert s.append("t.avro", b"with a token", expected_size=0) == 12
    assert s.read("t.avro") == b"with a token"
    assert [o.path for o in s.list()] == ["t.avro"]
    assert seen and seen[0]["query"]["resource"] == ["https://storage.azure.com"]
    assert seen[0]["header"] == "stand-in-header-secret"
    s.close()
    # A token for another audience is refused: a clear, permanent error without the token.
    state["audience"] = "https://vault.azure.net"
    bad = BlobStorage(f"{server.account_url}/{container_name}/mi", retry=FAST,
                      managed_identity_client_id="11111111-2222-3333-4444-555555555555")
    with pytest.raises(StorageError) as info:
        bad.append("u.avro", b"x", expected_size=0)
    assert info.value.transient is False and "access denied" in str(info.value)
    text = _all_text(info.value, bad, caplog)
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+", text)  # no bearer token anywhere
    assert "stand-in-header-secret" not in text
    bad.close()


def test_lookups_have_their_own_short_timeout_and_are_not_retried() -> None:
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    storage = BlobStorage("az://c-lookups/p", connection_string=conn, lookup_timeout=1.5)
    lookups = storage.for_lookups()
    assert lookups.retry.attempts == 1 and storage.retry.attempts > 1
    assert lookups._lookup_kwargs == {"connection_timeout": 1.5, "read_timeout": 1.5}
    assert storage._lookup_kwargs == {}  # uploads keep connect_timeout and read_timeout
    for bad in (0, -1, "5", True):
        with pytest.raises(ValueError, match="lookup_timeout"):
            BlobStorage("az://c-lookups/p", connection_string=conn, lookup_timeout=bad)
    storage.close()
