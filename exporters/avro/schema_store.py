"""Each collection's reader schema, published beside its data.

``{endpoint}/{deployment}/{collection}/_schema/`` holds one ``<fingerprint>.avsc``
per schema any writer wrote (content-addressed, so replicas and retries write
the same object harmlessly) and ``latest.avsc``: one schema that reads every
file of the collection by Avro's resolution rules (the merge of all versions,
see `exporters.avro.schema_evolution.merge_schemas`). Two writers publishing at once
may each leave a `latest.avsc` without the other's change; the versions are
complete, so readers that want certainty merge them (`read_reader_schema`), and
the next publication repairs `latest.avsc`.

Storage stays format-agnostic: this module only puts and reads bytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ..storage.base import Storage, StorageError
from .schema import fingerprint
from .schema_evolution import merge_schemas

SCHEMA_DIR = "_schema"
LATEST = "latest.avsc"
_MAX_VERSIONS = 1000  # versions merged at most (a runaway writer must not make reads unbounded)

_log = logging.getLogger(__name__)


def schema_dir(collection_prefix: str) -> str:
    """The folder of a collection's published schemas (`collection_prefix` ends with '/')."""
    return f"{collection_prefix}{SCHEMA_DIR}/"


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        schema = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(schema, dict) and isinstance(schema.get("fields"), list)
    return schema if ok else None


def _encode(schema: Mapping[str, Any]) -> bytes:
    return json.dumps(schema, indent=1, sort_keys=False).encode("utf-8")


def read_latest(storage: Storage, collection_prefix: str) -> dict[str, Any] | None:
    """The published ``latest.avsc`` of a collection, or None (absent or unreadable)."""
    try:
        data = storage.read(schema_dir(collection_prefix) + LATEST)
    except FileNotFoundError:
        return None
    return _decode(data)


def read_versions(storage: Storage, collection_prefix: str) -> list[dict[str, Any]]:
    """Every published version of a collection's schema (``latest.avsc`` excluded)."""
    folder = schema_dir(collection_prefix)
    found = []
    for info in storage.list(folder):
        name = info.path[len(folder):]
        if name == LATEST or "/" in name or not name.endswith(".avsc"):
            continue
        try:
            schema = _decode(storage.read(info.path))
        except FileNotFoundError:
            continue
        if schema is not None:
            found.append(schema)
        if len(found) >= _MAX_VERSIONS:
            break
    return found


def _merged(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    # A writer's schemas only grow: its newest holds its older ones, field order included.
    # Widest first, so the merge keeps that order (ties: by content, for every reader alike).
    unique = {fingerprint(v): v for v in versions}
    ordered = sorted(unique.items(), key=lambda kv: (-len(kv[1]["fields"]), kv[0]))
    return merge_schemas([v for _, v in ordered])


def read_reader_schema(storage: Storage, collection_prefix: str) -> dict[str, Any] | None:
    """One schema that reads every file of the collection: the merge of all published
    versions (certain even after concurrent publications), else ``latest.avsc``."""
    versions = read_versions(storage, collection_prefix)
    return _merged(versions) if versions else read_latest(storage, collection_prefix)


def publish(storage: Storage, collection_prefix: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Publish `schema` as a version of the collection and refresh ``latest.avsc``;
    returns the reader schema now published.

    `schema` joins the merge itself: a storage that holds puts until a commit (serve's
    write-ahead path) does not read them back yet. The versions are listed again after
    the put, so a publication that raced with another replica's is repaired at once."""
    folder = schema_dir(collection_prefix)
    version = f"{folder}{fingerprint(dict(schema))}.avsc"
    if storage.size(version) is None:
        storage.put(version, _encode(schema))
    current = read_latest(storage, collection_prefix)
    latest: dict[str, Any] = dict(schema)
    for _ in range(2):
        latest = _merged([dict(schema), *read_versions(storage, collection_prefix)]) or latest
        if latest == current:
            break
        storage.put(folder + LATEST, _encode(latest))
        current = latest
    return latest


def publish_quietly(storage: Storage, collection_prefix: str, schema: Mapping[str, Any]) -> bool:
    """`publish`, logging instead of raising: the data is written already, a missing
    schema copy only costs readers a merge of file headers."""
    try:
        publish(storage, collection_prefix, schema)
    except (StorageError, OSError) as e:
        _log.warning("publishing the schema of %s failed: %s", collection_prefix, e)
        return False
    return True
