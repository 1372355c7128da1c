"""Storage backends for exported files, chosen by the destination's form."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..config_model import validate
from ..settings import SPOOL_DIR_ENV
from .base import AppendConflict, ObjectInfo, ObjectRejected, SpoolFull, Storage, StorageError
from .local import LocalStorage
from .options import (
    BLOB_OPTIONS,
    RUNTIME_OPTIONS,
    SPOOL_OPTIONS,
    BlobStorageOptions,
    LocalStorageOptions,
)

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

_SPOOL_OPTIONS = SPOOL_OPTIONS
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

    The options are checked against the backend's model (`storage.options`:
    `LocalStorageOptions`, `BlobStorageOptions` with the spool's), which holds each
    one's default and environment variable; ``credential`` and ``retry`` are objects
    only code gives.
    """
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError("destination must be a non-empty string")
    parsed = urlparse(destination)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return LocalStorage(unquote(parsed.path), **_local_options(options))
    if scheme == "" or (len(scheme) == 1 and destination[1] == ":"):
        return LocalStorage(destination, **_local_options(options))
    if scheme in ("az", "https", "http"):
        return _open_blob(destination, options)
    raise ValueError(f"unsupported destination scheme {parsed.scheme!r} in {destination.split('?')[0]!r}")


def _local_options(options: dict[str, Any]) -> dict[str, Any]:
    return validate(LocalStorageOptions, options, prefix="storage_options").model_dump()


def _blob_options(options: dict[str, Any]) -> tuple[BlobStorageOptions, dict[str, Any]]:
    """The checked options of a Blob destination, and the objects only code gives."""
    unknown = set(options) - set(BlobStorageOptions.keys()) - RUNTIME_OPTIONS
    if unknown:
        known = sorted({*BlobStorageOptions.keys(), *RUNTIME_OPTIONS})
        raise ValueError(f"unknown Blob storage option(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(known)})")
    runtime = {k: options[k] for k in RUNTIME_OPTIONS if k in options}
    given = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS}
    return validate(BlobStorageOptions, given, prefix="storage_options"), runtime


def _open_blob(destination: str, options: dict[str, Any]) -> Storage:
    from .blob import BlobStorage, RetryPolicy
    from .spool import SpooledStorage

    checked, runtime = _blob_options(options)
    given = checked.model_fields_set
    spool_kwargs = {_SPOOL_OPTIONS[k]: getattr(checked, k) for k in _SPOOL_OPTIONS}
    if checked.spool:
        # The spool retries for as long as it takes; the backend gives up quickly instead.
        runtime.setdefault("retry", RetryPolicy(attempts=2, deadline=10.0))
    inner = BlobStorage(destination, **{k: getattr(checked, k) for k in BLOB_OPTIONS}, **runtime)
    if not checked.spool:
        asked = sorted(set(_SPOOL_OPTIONS) & given)
        if asked:
            inner.close()
            raise ValueError(f"options {', '.join(asked)} need the spool")
        return inner
    if checked.mode == "roll":
        if "window_seconds" not in given:
            spool_kwargs["window_seconds"] = ROLL_WINDOW_SECONDS
        if "window_bytes" not in given:
            spool_kwargs["window_bytes"] = ROLL_WINDOW_BYTES
    identity = inner.identity()
    directory = Path(checked.spool_dir) if checked.spool_dir else default_spool_dir(identity)
    try:
        claim_spool_dir(directory, identity)
        return SpooledStorage(inner, directory, **spool_kwargs)
    except BaseException:
        inner.close()
        raise
