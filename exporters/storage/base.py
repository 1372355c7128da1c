"""The storage interface: a flat namespace of byte objects under one root.

Storage knows nothing of Avro or of partitions; it stores bytes at relative,
'/'-separated paths. `append` carries the size the caller expects the object to
have, so a retried append can be detected instead of written twice (Azure append
blobs check the same condition server-side with `appendpos_condition`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


class StorageError(Exception):
    """Storage failed; `transient` says whether retrying later may succeed."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class AppendConflict(StorageError):
    """The object was not the expected size; `actual_size` is what it really is."""

    def __init__(self, path: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{path}: expected size {expected}, found {actual}", transient=False
        )
        self.path = path
        self.expected = expected
        self.actual_size = actual


class ObjectRejected(StorageError):
    """A permanent failure that concerns one object (wrong type, too many blocks, too
    large), not the storage: a spool drops the operation instead of retrying it forever."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class SpoolFull(StorageError):
    """The spool had no room: the operation was NOT accepted (and was counted as dropped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


@dataclass(frozen=True)
class ObjectInfo:
    path: str
    size: int


class Storage(ABC):
    """Byte objects addressed by relative paths, e.g. ``ep/dep/inputs/2026/11/24/13/host.avro``."""

    #: How many appends one object takes before the writer must start a new one.
    max_appends: int | None = None

    @abstractmethod
    def append(self, path: str, data: bytes, *, expected_size: int) -> int:
        """Append `data` to `path`, which must currently hold `expected_size` bytes
        (0: absent or empty). Returns the new size; raises `AppendConflict` otherwise."""

    @abstractmethod
    def put(self, path: str, data: bytes) -> None:
        """Store `data` as the whole object at `path`, replacing any previous one."""

    @abstractmethod
    def size(self, path: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""

    @abstractmethod
    def read(self, path: str) -> bytes:
        """The object's bytes; FileNotFoundError if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose path starts with `prefix` (a folder prefix ends with '/')."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything appended so far durable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and handles."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data goes, for logs: never includes credentials."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
