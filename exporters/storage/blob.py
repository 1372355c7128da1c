"""Azure Blob Storage backend: append blobs (default) or block blobs ("roll" mode).

Every append is conditional on the object's current size, so a retried append
never writes data twice:

* append mode: ``append_block(data, appendpos_condition=expected_size)``;
* roll mode (for accounts or policies that forbid append blobs): the new bytes
  are staged as blocks with deterministic ids and committed together with the
  blob's committed block list under an ETag condition, so each commit atomically
  replaces the blob with the whole object so far.  The time/size window that
  makes roll mode upload rarely is applied by the spool (`SpooledStorage`).

Lost responses: when an append's response is lost (timeout, dropped
connection) and the retry finds the blob longer than expected, the extra bytes
are read back and compared with the data being appended (append mode) or the
blob's last committed block ids are compared with the ids this append would
have committed (roll mode; an id encodes offset, length and CRC-32 of the
data).  Only a match counts as "already done"; anything else is an
`AppendConflict` carrying the blob's real size.

Credentials (connection string, account key, SAS token, tokens) are never put
in log records, exception messages, ``repr`` or ``describe()``: errors are
re-raised as `StorageError` with a message built here, without chaining the SDK
exception (whose text may contain request URLs).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, BlobServiceClient, BlobType, BlockState, ContentSettings

from .base import AppendConflict, ObjectInfo, ObjectRejected, Storage, StorageError
from .paths import check_relative_path

__all__ = ["BlobObjectError", "BlobStorage", "RetryPolicy", "check_blob_name", "parse_destination"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Azure's limit is 50,000 blocks per append blob or committed block list.
BLOCK_LIMIT = 50_000
#: What the writer may use; the margin absorbs appends split into several blocks.
MAX_APPENDS = 45_000
#: Largest block sent in one request (4 MiB is accepted by every service version).
MAX_BLOCK_BYTES = 4 * 1024 * 1024

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_BLOB_SUFFIXES = (
    ".blob.core.windows.net",
    ".blob.core.chinacloudapi.cn",
    ".blob.core.usgovcloudapi.net",
    ".blob.storage.azure.net",
)
_OCTET = ContentSettings(content_type="application/octet-stream")


class BlobObjectError(ObjectRejected):
    """A permanent failure that concerns one blob (wrong blob type, block limit, too large),
    not the account."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by a deadline."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    deadline: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def check_container_name(name: str) -> str:
    """Return `name` if Azure accepts it as a container name, else raise ValueError."""
    if not isinstance(name, str) or not _CONTAINER_RE.match(name):
        raise ValueError(
            f"invalid Blob container name {name!r}: use 3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit"
        )
    return name


def check_blob_name(name: str) -> str:
    """Return `name` if it is a safe Blob name, else raise ValueError.

    On top of `check_relative_path`: at most 1024 characters and 254 segments,
    no segment ending in '.' (Azure and hierarchical-namespace accounts strip or
    reject it), no lone surrogates, Unicode non-characters or C1 control characters.
    """
    check_relative_path(name)
    if len(name) > 1024:
        raise ValueError(f"Blob name is longer than 1024 characters: {name[:80]!r}...")
    segments = name.split("/")
    if len(segments) > 254:
        raise ValueError(f"Blob name has more than 254 path segments: {name[:80]!r}...")
    for segment in segments:
        if segment.endswith("."):
            raise ValueError(f"Blob name has a segment ending in '.': {name!r}")
        for c in segment:
            o = ord(c)
            if 0x80 <= o <= 0x9F or 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF):
                raise ValueError(f"Blob name has a character Azure rejects (U+{o:04X}): {name!r}")
    return name


@dataclass(frozen=True)
class Destination:
    """A parsed Blob destination; `account_url` is None for ``az://`` (connection string)."""

    container: str
    prefix: str
    account_url: str | None = None
    sas_token: str | None = None


def parse_destination(destination: str) -> Destination:
    """Parse ``az://container[/prefix]`` or ``https://account.blob.../container[/prefix]``.

    Emulator-style URLs (``http://127.0.0.1:10000/devstoreaccount1/container/prefix``)
    are accepted too: when the host is not ``<account>.blob.<suffix>`` the first
    path segment is the account.  A SAS token in the URL's query is returned
    separately and never shown.
    """
    parsed = urlparse(destination)
    scheme = parsed.scheme.lower()
    if scheme == "az":
        container = parsed.netloc
        rest = unquote(parsed.path).strip("/")
        return Destination(check_container_name(container), _check_prefix(rest, destination))
    if scheme not in ("https", "http"):
        raise ValueError(f"not a Blob destination (az:// or https://): {_strip_query(destination)}")
    host = (parsed.hostname or "").lower()
    segments = [s for s in unquote(parsed.path).split("/") if s]
    netloc = parsed.netloc.rpartition("@")[2]
    if any(host.endswith(s) for s in _BLOB_SUFFIXES) or ".blob." in host:
        base = f"{scheme}://{netloc}"
    else:
        if not segments:
            raise ValueError(f"Blob destination lacks an account: {_strip_query(destination)}")
        base = f"{scheme}://{netloc}/{segments.pop(0)}"
    if not segments:
        raise ValueError(f"Blob destination lacks a container: {_strip_query(destination)}")
    container = check_container_name(segments.pop(0))
    prefix = _check_prefix("/".join(segments), destination)
    sas = parsed.query or None
    return Destination(container, prefix, base, sas)


def _check_prefix(prefix: str, destination: str) -> str:
    if not prefix:
        return ""
    try:
        check_blob_name(prefix)
    except ValueError as e:
        raise ValueError(f"invalid prefix in Blob destination {_strip_query(destination)}: {e}") from None
    return prefix + "/"


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _conn_str_fields(conn_str: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in conn_str.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


class _Redactor:
    """Removes known secrets and anything shaped like one from text."""

    _PATTERNS = (
        (re.compile(r"(?i)\b(sig|signature)=[^&\s;'\"<]+"), r"\1=***"),
        (re.compile(r"(?i)\b(AccountKey|SharedAccessSignature)=[^;\s'\"<]+"), r"\1=***"),
        (re.compile(r"(?i)(Authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,}]+"), r"\1***"),
    )

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        for pattern, repl in self._PATTERNS:
            text = pattern.sub(repl, text)
        return text


class _RedactingFilter(logging.Filter):
    """Masks SAS signatures in third-party log records (urllib3 logs full URLs at DEBUG)."""

    _redact = _Redactor([])

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_LOGGERS_WITH_URLS = ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy")
_filter_installed = False


def _install_log_redaction() -> None:
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    for name in _LOGGERS_WITH_URLS:
        logging.getLogger(name).addFilter(_RedactingFilter())


class BlobStorage(Storage):
    """Objects are blobs named ``<prefix><path>`` in one container.

    Nothing touches the network at construction, so a scoring process starts
    even while storage is unreachable; the container is created on first write
    when missing (unless ``create_container=False``).
    """

    def __init__(
        self,
        destination: str,
        *,
        connection_string: str | None = None,
        sas_token: str | None = None,
        account_key: str | None = None,
        credential: Any = None,
        managed_identity_client_id: str | None = None,
        mode: str = "append",
        create_container: bool = True,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        lookup_timeout: float = 5.0,
    ) -> None:
        if mode not in ("append", "roll"):
            raise ValueError(f"mode must be 'append' or 'roll', not {mode!r}")
        dest = parse_destination(destination)
        self.container_name = dest.container
        self.prefix = dest.prefix
        self.mode = mode
        self.create_container = create_container
        self.retry = retry or RetryPolicy()
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
                            ("lookup_timeout", lookup_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.lookup_timeout = float(lookup_timeout)
        #: Per-request options of listing and size calls (see `for_lookups`).
        self._lookup_kwargs: dict[str, float] = {}
        self.max_appends = MAX_APPENDS
        self._lock = threading.Lock()
        self._container_ready = False
        self._retries = 0
        self._owned_credential: Any = None
        _install_log_redaction()
        secrets: list[str] = []
        client_kwargs: dict[str, Any] = {
            "retry_total": 0,  # retries happen here, where errors are classified
            "connection_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }
        if dest.account_url is None:
            if sas_token or account_key or credential is not None or managed_identity_client_id:
                raise ValueError(
                    "sas_token, account_key, credential and managed_identity_client_id apply to "
                    "https:// destinations; az:// destinations use a connection string")
            conn_str = connection_string or _env("AZURE_STORAGE_CONNECTION_STRING")
            if not conn_str:
                raise ValueError(
                    f"destination az://{dest.container} needs a connection string: set "
                    "AZURE_STORAGE_CONNECTION_STRING or the connection_string option"
                )
            fields = _conn_str_fields(conn_str)
            secrets += [conn_str, fields.get("accountkey", ""), fields.get("sharedaccesssignature", "")]
            secrets += _sas_signatures(fields.get("sharedaccesssignature", ""))
            self._redact = _Redactor(secrets)
            try:
                self._service = BlobServiceClient.from_connection_string(conn_str, **client_kwargs)
            except Exception as e:  # the SDK's message may quote the string
                raise ValueError(f"invalid Azure Storage connection string: {self._redact(str(e))}") from None
            self.account_name = fields.get("accountname") or self._service.account_name or "?"
        else:
            if connection_string:
                raise ValueError("connection_string applies to az:// destinations; "
                                 "use az://<container>[/<prefix>] with it")
            sas = sas_token or dest.sas_token
            if sas:
                sas = sas.lstrip("?")
                secrets += [sas, *_sas_signatures(sas)]
                cred: Any = sas
            elif account_key:
                secrets.append(account_key)
                cred = None  # filled once the account name is known
            elif credential is not None:
                cred = credential
            else:
                cred = self._default_credential(managed_identity_client_id)
            self._redact = _Redactor(secrets)
            account = _account_from_url(dest.account_url)
            if account_key:
                cred = {"account_name": account, "account_key": account_key}
            try:
                self._service = BlobServiceClient(dest.account_url, credential=cred, **client_kwargs)
            except Exception as e:
                raise ValueError(f"cannot use Blob account URL {dest.account_url}: {self._redact(str(e))}") from None
            self.account_name = account
        self._endpoint = _strip_query(self._service.url).rstrip("/")
        self._container = self._service.get_container_client(self.container_name)

    # -- construction helpers -------------------------------------------------

    def _default_credential(self, managed_identity_client_id: str | None) -> Any:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise ValueError(
                "an https:// Blob destination without sas_token or account_key uses "
                "DefaultAzureCredential, which needs the azure-identity package: "
                "pip install azure-identity"
            ) from None
        kwargs = {}
        if managed_identity_client_id:
            kwargs["managed_identity_client_id"] = managed_identity_client_id
        self._owned_credential = DefaultAzureCredential(**kwargs)
        return self._owned_credential

    # -- Storage interface ----------------------------------------------------

    def append(self, path: str, data: bytes, *, expected_size: int) -> int:
        name = self._name(path)
        if expected_size < 0:
            raise ValueError("expected_size must be >= 0")
        if not data:
            return self._retrying("append to", path, lambda: self._check_size(path, name, expected_size))
        once = self._append_block_once if self.mode == "append" else self._append_roll_once
        return self._retrying("append to", path, lambda: once(path, name, bytes(data), expected_size))

    def put(self, path: str, data: bytes) -> None:
        name = self._name(path)

        def once() -> None:
            self._writing(lambda: self._container.upload_blob(
                name, bytes(data), overwrite=True, content_settings=_OCTET))

        self._retrying("write", path, once)

    def size(self, path: str) -> int | None:
        name = self._name(path)
        return self._retrying("get the size of", path, lambda: self._props_size(name))

    def read(self, path: str) -> bytes:
        name = self._name(path)

        def once() -> bytes:
            try:
                return self._container.download_blob(name).readall()
            except HttpResponseError as e:
                if e.status_code == 404:
                    raise FileNotFoundError(f"{self._where(path)} does not exist") from None
                raise

        return self._retrying("read", path, once)

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        """`length` bytes of the object from `offset` (fewer at its end)."""
        name = self._name(path)
        if length <= 0:
            return b""
        return self._retrying("read", path, lambda: self._range(name, offset, length))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix and (prefix.startswith("/") or "\\" in prefix or "//" in prefix):
            raise ValueError(f"invalid storage prefix: {prefix!r}")
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self.prefix + prefix
        token: str | None = None
        while True:
            page, token = self._retrying("list", prefix or "/", lambda t=token: self._list_page(full, t))
            yield from page
            if not token:
                return

    def flush(self) -> None:
        """Nothing to do: an append returns once the service has stored it."""

    def close(self) -> None:
        self._service.close()
        if self._owned_credential is not None:
            close = getattr(self._owned_credential, "close", None)
            if close:
                close()

    def for_lookups(self) -> BlobStorage:
        """This storage for the lookups a writer waits for (listing, sizes): each request
        times out after `lookup_timeout` seconds, and is not retried. Shares connections."""
        view = copy.copy(self)
        view.retry = RetryPolicy(attempts=1, deadline=self.lookup_timeout)
        view._lookup_kwargs = {"connection_timeout": self.lookup_timeout,
                               "read_timeout": self.lookup_timeout}
        return view

    def identity(self) -> str:
        """Which account, container and prefix this is (no credentials): names its spool."""
        return f"{self._endpoint}/{self.container_name}/{self.prefix}"

    def describe(self) -> str:
        return (
            f"az://{self.container_name}/{self.prefix} ({self.mode} blobs, account "
            f"{self.account_name} at {self._endpoint})"
        )

    def stats(self) -> dict[str, int]:
        """Counters of this backend: retries of transient failures."""
        return {"retries": self._retries}

    def check_path(self, path: str) -> str:
        """Raise ValueError unless `path` makes a valid Blob name under the prefix."""
        self._name(path)
        return path

    # -- internals ------------------------------------------------------------

    def _name(self, path: str) -> str:
        check_relative_path(path)
        return check_blob_name(self.prefix + path)

    def _where(self, path: str) -> str:
        return f"az://{self.container_name}/{self.prefix}{path}"

    def _retrying(self, what: str, path: str, fn: Callable[[], T]) -> T:
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except (AppendConflict, FileNotFoundError, ValueError):
                raise
            except StorageError as e:
                err = e
            except AzureError as e:
                err = self._translate(e, what, path)
            attempt += 1
            delay = self.retry.delay(attempt)
            if (
                not err.transient
                or attempt >= self.retry.attempts
                or time.monotonic() - start + delay > self.retry.deadline
            ):
                raise err from None
            self._retries += 1
            # INFO: the caller logs the failure if the retries do not help; stats() counts them.
            log.info("%s; retry %d in %.2fs", err, attempt, delay)
            time.sleep(delay)

    def _translate(self, e: AzureError, what: str, path: str) -> StorageError:
        where = self._where(path)
        text = (getattr(e, "message", None) or str(e)).strip()
        first = self._redact(text.splitlines()[0] if text else type(e).__name__)
        if isinstance(e, ServiceRequestError):
            return StorageError(f"cannot {what} {where}: cannot reach {self._endpoint} ({first})")
        if isinstance(e, ServiceResponseError):
            return StorageError(f"cannot {what} {where}: connection to {self._endpoint} failed ({first})")
        status = getattr(e, "status_code", None)
        code = _code(e)
        if isinstance(e, ClientAuthenticationError) and status is None:
            return StorageError(
                f"cannot {what} {where}: no Azure credential could get a token ({first})", transient=False)
        detail = f"HTTP {status} {code}".rstrip() + f": {first}"
        if status in _TRANSIENT_STATUS or status is None:
            return StorageError(f"cannot {what} {where}: {detail}")
        if status in (401, 403):
            hint = (
                "the credential lacks permission for this operation"
                if "Permission" in code or "Mismatch" in code
                else "check the connection string, account key, SAS token or identity (not shown)"
            )
            return StorageError(f"cannot {what} {where}: access denied, {hint} ({detail})", transient=False)
        if status == 404 and code == "ContainerNotFound":
            return StorageError(
                f"cannot {what} {where}: container {self.container_name!r} does not exist ({detail})",
                transient=False,
            )
        if code in ("InvalidBlobType", "BlockCountExceedsLimit", "RequestBodyTooLarge",
                    "MaxBlobSizeConditionNotMet", "InvalidBlobOrBlock", "InvalidResourceName",
                    "BlobImmutableDueToPolicy"):
            return BlobObjectError(f"cannot {what} {where}: {detail}")
        return StorageError(f"cannot {what} {where}: {detail}", transient=False)

    def _writing(self, fn: Callable[[], T]) -> T:
        """Run a write, creating the container once if it is missing."""
        try:
            return fn()
        except HttpResponseError as e:
            if e.status_code != 404 or _code(e) != "ContainerNotFound":
                raise
        self._ensure_container()
        return fn()

    def _ensure_container(self) -> None:
        with self._lock:
            if self._container_ready:
                return
            if not self.create_container:
                raise StorageError(
                    f"container {self.container_name!r} does not exist at {self._endpoint} "
                    "and create_container is off", transient=False)
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass
            except HttpResponseError as e:
                if e.status_code in (401, 403):
                    raise StorageError(
                        f"container {self.container_name!r} does not exist at {self._endpoint} and "
                        f"this credential may not create it (HTTP {e.status_code} {_code(e)}); "
                        "create the container or grant permission to create it",
                        transient=False) from None
                raise
            self._container_ready = True
            log.info("created container %s at %s", self.container_name, self._endpoint)

    def _props(self, name: str) -> Any:
        try:
            return self._container.get_blob_client(name).get_blob_properties(**self._lookup_kwargs)
        except HttpResponseError as e:
            if e.status_code == 404:
                return None
            raise

    def _props_size(self, name: str) -> int | None:
        props = self._props(name)
        return None if props is None else int(props.size)

    def _range(self, name: str, offset: int, length: int) -> bytes:
        return self._container.download_blob(name, offset=offset, length=length).readall()

    def _list_page(self, full_prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        pages = self._container.list_blobs(name_starts_with=full_prefix or None,
                                           **self._lookup_kwargs).by_page(continuation_token=token)
        try:
            page = next(pages)
            items = [ObjectInfo(b.name[len(self.prefix):], int(b.size)) for b in page]
        except StopIteration:
            return [], None
        except HttpResponseError as e:
            if e.status_code == 404 and _code(e) == "ContainerNotFound":
                return [], None
            raise
        return items, pages.continuation_token

    def _check_size(self, path: str, name: str, expected: int) -> int:
        actual = self._props_size(name) or 0
        if actual != expected:
            raise AppendConflict(path, expected, actual)
        return actual

    def _append_block_once(self, path: str, name: str, data: bytes, expected: int) -> int:
        blob = self._container.get_blob_client(name)
        if expected == 0:
            try:
                self._writing(lambda: blob.create_append_blob(
                    content_settings=_OCTET, match_condition=MatchConditions.IfMissing))
            except ResourceExistsError:
                pass  # an earlier attempt created it; appendpos checks the rest
            except HttpResponseError as e:
                if e.status_code not in (409, 412):
                    raise
        end = expected + len(data)
        pos = expected
        stalls = 0
        while pos < end:
            chunk = data[pos - expected: pos - expected + MAX_BLOCK_BYTES]
            try:
                blob.append_block(chunk, appendpos_condition=pos)
                pos += len(chunk)
                continue
            except HttpResponseError as e:
                if e.status_code == 404 and _code(e) == "BlobNotFound":
                    raise AppendConflict(path, expected, 0) from None
                if _code(e) != "AppendPositionConditionNotMet":
                    raise
            actual = self._props_size(name) or 0
            if actual == pos:
                stalls += 1
                if stalls > 3:
                    raise StorageError(f"append to {self._where(path)} keeps failing its position check")
                continue
            if not (pos < actual <= end) or self._range(name, pos, actual - pos) != data[
                pos - expected: actual - expected
            ]:
                raise AppendConflict(path, expected, actual)
            log.info("append to %s had already reached the service (lost response): %d bytes kept",
                     self._where(path), actual - pos)
            pos = actual
        return end

    def _append_roll_once(self, path: str, name: str, data: bytes, expected: int) -> int:
        blob = self._container.get_blob_client(name)
        props = self._props(name)
        if props is not None and props.blob_type != BlobType.BLOCKBLOB:
            raise BlobObjectError(f"{self._where(path)} exists but is not a block blob")
        actual = 0 if props is None else int(props.size)
        ids = [
            _block_id(expected + off, data[off: off + MAX_BLOCK_BYTES])
            for off in range(0, len(data), MAX_BLOCK_BYTES)
        ]
        blocks_now = [] if props is None else blob.get_block_list("committed")[0]
        if sum(b.size for b in blocks_now) != actual:
            # Written in one Put Blob (no block list): committing blocks would replace it.
            raise BlobObjectError(f"{self._where(path)} exists and was not written in blocks")
        committed = [b.id for b in blocks_now]
        if actual != expected:
            if actual == expected + len(data) and committed[-len(ids):] == ids:
                log.info("commit to %s had already reached the service (lost response)",
                         self._where(path))
                return actual
            raise AppendConflict(path, expected, actual)
        if len(committed) + len(ids) > BLOCK_LIMIT:
            raise BlobObjectError(f"{self._where(path)} would exceed {BLOCK_LIMIT} blocks")
        for i, off in enumerate(range(0, len(data), MAX_BLOCK_BYTES)):
            chunk = data[off: off + MAX_BLOCK_BYTES]
            self._writing(lambda c=chunk, i=i: blob.stage_block(ids[i], c))
        blocks = [BlobBlock(b, BlockState.COMMITTED) for b in committed]
        blocks += [BlobBlock(b, BlockState.UNCOMMITTED) for b in ids]
        condition: dict[str, Any] = (
            {"match_condition": MatchConditions.IfMissing} if props is None
            else {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
        )
        try:
            blob.commit_block_list(blocks, content_settings=_OCTET, **condition)
        except HttpResponseError as e:
            if e.status_code not in (409, 412):
                raise
            # Someone (or a lost earlier response) changed it: decide from its new state.
            return self._append_roll_settle(path, name, ids, expected, len(data))
        return expected + len(data)

    def _append_roll_settle(self, path: str, name: str, ids: list[str], expected: int, n: int) -> int:
        blob = self._container.get_blob_client(name)
        actual = self._props_size(name) or 0
        if actual == expected + n and [b.id for b in blob.get_block_list("committed")[0]][-len(ids):] == ids:
            return actual
        raise AppendConflict(path, expected, actual)


def _block_id(offset: int, chunk: bytes) -> str:
    # Fixed width: Azure requires all block ids of a blob to have the same length.
    return f"{offset:016x}{len(chunk):08x}{zlib.crc32(chunk):08x}"


def _code(e: Exception) -> str:
    code = getattr(e, "error_code", None)
    if code is None:
        return ""
    return str(getattr(code, "value", code))


def _sas_signatures(sas: str) -> list[str]:
    if not sas:
        return []
    sigs = parse_qs(sas.lstrip("?")).get("sig", [])
    return sigs + [s.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") for s in sigs]


def _account_from_url(url: str) -> str:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    segments = [s for s in parsed.path.split("/") if s]
    if any(host.endswith(s) for s in _BLOB_SUFFIXES) or ".blob." in host:
        return host.split(".", 1)[0]
    return segments[0] if segments else host


def _env(name: str) -> str | None:
    return os.environ.get(name) or None
