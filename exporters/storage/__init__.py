"""Storage backends for exported files, chosen by the destination's form."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..settings import SPOOL_DIR_ENV
from .base import AppendConflict, ObjectInfo, ObjectRejected, SpoolFull, Storage, StorageError
from .local import LocalStorage

__all__ = [
    "AppendConflict",
    "LocalStorage",
    "ObjectInfo",
    "ObjectRejected",
    "SpoolFull",
    "Storage",
    "StorageError",
    "claim_spool_dir",
    "default_spool_dir",
    "open_storage",
]

_BLOB_OPTIONS = {
    "connection_string", "sas_token", "account_key", "credential", "managed_identity_client_id",
    "mode", "create_container", "connect_timeout", "read_timeout", "lookup_timeout", "retry",
}
_SPOOL_OPTIONS = {
    "spool_max_bytes": "max_bytes", "spool_max_ops": "max_ops",
    "spool_full_policy": "full_policy", "spool_block_timeout": "block_timeout",
    "spool_segment_bytes": "segment_bytes", "window_seconds": "window_seconds",
    "window_bytes": "window_bytes", "upload_max_backoff": "max_backoff",
    "close_timeout": "close_timeout",
}
SPOOL_IDENTITY_FILE = "DESTINATION"
#: Roll mode's default window, like Event Hubs Capture: 5 minutes or 64 MiB, whichever first.
ROLL_WINDOW_SECONDS = 300.0
ROLL_WINDOW_BYTES = 64 * 1024 * 1024


def default_spool_dir(identity: str) -> Path:
    """Where the spool of a destination lives unless `spool_dir` is given:
    ``$OTEL_COLLECTOR_EXT_SPOOL_DIR`` or ``~/.cache/otel-collector-ext/spool``, then a
    folder per destination `identity` (account endpoint, container and prefix: the
    same ``az://`` text can name containers of different accounts)."""
    base = os.environ.get(SPOOL_DIR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "otel-collector-ext", "spool")
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return Path(base) / digest


def claim_spool_dir(directory: Path, identity: str) -> None:
    """Mark `directory` as the spool of `identity`; ValueError if another destination's.

    A spool holds data bound for one account and container: adopting it for another
    would upload one tenant's data into another's storage.
    """
    from .spool import write_file_durably

    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / SPOOL_IDENTITY_FILE
    try:
        found = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        # Whole or not at all (a full disk leaves no half-written marker behind).
        write_file_durably(marker, identity.encode(), "marker")
        return
    if found != identity:
        raise ValueError(
            f"spool_dir {str(directory)!r} holds the spool of another destination ({found}); "
            f"give {identity} a spool_dir of its own"
        )


def open_storage(destination: str, **options: Any) -> Storage:
    """A backend for `destination`.

    * a local path or ``file://`` URL: `LocalStorage` (option ``fsync``);
    * ``az://<container>[/<prefix>]`` (connection string) or
      ``https://<account>.blob.core.windows.net/<container>[/<prefix>]``: `BlobStorage`
      behind a durable `SpooledStorage` (``spool=False`` for none, e.g. to read back).

    Blob options: connection_string, sas_token, account_key, credential,
    managed_identity_client_id, mode (append|roll), create_container,
    connect_timeout, read_timeout, lookup_timeout.  Spool options: spool (bool), spool_dir,
    spool_max_bytes, spool_max_ops, spool_full_policy (drop|block),
    spool_block_timeout, window_seconds, window_bytes, upload_max_backoff,
    close_timeout.
    """
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError("destination must be a non-empty string")
    parsed = urlparse(destination)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return LocalStorage(unquote(parsed.path), **options)
    if scheme == "" or (len(scheme) == 1 and destination[1] == ":"):
        return LocalStorage(destination, **options)
    if scheme in ("az", "https", "http"):
        return _open_blob(destination, options)
    raise ValueError(f"unsupported destination scheme {parsed.scheme!r} in {destination.split('?')[0]!r}")


def _open_blob(destination: str, options: dict[str, Any]) -> Storage:
    from .blob import BlobStorage, RetryPolicy
    from .spool import SpooledStorage

    options = dict(options)
    spool = options.pop("spool", True)
    spool_dir = options.pop("spool_dir", None)
    spool_kwargs = {_SPOOL_OPTIONS[k]: options.pop(k) for k in list(options) if k in _SPOOL_OPTIONS}
    unknown = set(options) - _BLOB_OPTIONS
    if unknown:
        known = sorted(_BLOB_OPTIONS | set(_SPOOL_OPTIONS) | {"spool", "spool_dir"})
        raise ValueError(f"unknown Blob storage option(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(known)})")
    mode = options.get("mode", "append")
    if spool:
        # The spool retries for as long as it takes; the backend gives up quickly instead.
        options.setdefault("retry", RetryPolicy(attempts=2, deadline=10.0))
    inner = BlobStorage(destination, **options)
    if not spool:
        if spool_kwargs:
            raise ValueError(f"options {', '.join(sorted(spool_kwargs))} need the spool")
        return inner
    if mode == "roll":
        spool_kwargs.setdefault("window_seconds", ROLL_WINDOW_SECONDS)
        spool_kwargs.setdefault("window_bytes", ROLL_WINDOW_BYTES)
    identity = inner.identity()
    directory = Path(spool_dir) if spool_dir else default_spool_dir(identity)
    try:
        claim_spool_dir(directory, identity)
        return SpooledStorage(inner, directory, **spool_kwargs)
    except BaseException:
        inner.close()
        raise
