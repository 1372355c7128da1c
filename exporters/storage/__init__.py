"""Storage backends for exported files, chosen by the destination's form."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from .base import AppendConflict, ObjectInfo, Storage, StorageError
from .local import LocalStorage

__all__ = ["AppendConflict", "LocalStorage", "ObjectInfo", "Storage", "StorageError", "open_storage"]


def open_storage(destination: str, **options: Any) -> Storage:
    """A backend for `destination`: a local path or ``file://`` URL (more in later backends)."""
    if not isinstance(destination, str) or not destination.strip():
        raise ValueError("destination must be a non-empty string")
    parsed = urlparse(destination)
    if parsed.scheme == "file":
        return LocalStorage(unquote(parsed.path), **options)
    if parsed.scheme in ("", ) or (len(parsed.scheme) == 1 and destination[1] == ":"):
        return LocalStorage(destination, **options)
    raise ValueError(f"unsupported destination scheme {parsed.scheme!r} in {destination!r}")
