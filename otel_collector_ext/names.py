"""Validation of the names that become folder names in storage.

Endpoint, deployment and collection names end up in paths, so they are checked
when configured or constructed: a bad name is a clear error up front, never a
file written outside the storage root.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_\-])?")


def check_name(value: object, what: str) -> str:
    """Return `value` if it is a safe name for `what`, else raise ValueError/TypeError.

    Safe: a str of 1..128 characters from letters, digits, '_', '-', '.', not
    starting with '.' or '-' (so never '..', a hidden file or an option) and not
    ending with '.' (Azure Blob and Windows refuse such names).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} may contain only letters, digits, '_', '-' and '.', "
            "and must not start with '.' or '-' nor end with '.'"
        )
    return value
