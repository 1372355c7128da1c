"""Checks that keep every object path inside its storage root."""

from __future__ import annotations

_FORBIDDEN = set('\\:*?"<>|')


def check_relative_path(path: str) -> str:
    """Return `path` if it is a safe relative '/'-separated path, else raise ValueError.

    Safe: not empty, not absolute, no empty/'.'/'..' segments, no backslashes,
    control characters or characters that Windows or Blob names mishandle.
    """
    if not isinstance(path, str) or not path:
        raise ValueError("storage path must be a non-empty string")
    if len(path) > 1024:
        raise ValueError("storage path is longer than 1024 characters")
    if path.startswith("/"):
        raise ValueError(f"storage path must be relative: {path!r}")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"storage path has an empty, '.' or '..' segment: {path!r}")
        if any(ord(c) < 32 or ord(c) == 127 or c in _FORBIDDEN for c in segment):
            raise ValueError(f"storage path has a forbidden character: {path!r}")
    return path
