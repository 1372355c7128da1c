"""How a collection's tabular schema may change: the widenings Avro resolution reads.

A collection's schema is state: each batch is typed against the schema last
written (see `exporters.avro.tabular.convert_frames`), so a batch boundary never
changes a type. The only changes allowed are the ones Avro's own schema
resolution handles when a file is read with a newer schema:

- a field added (every column field is ``["null", T]`` with a null default);
- ``long`` widened to ``double`` (Avro promotes int -> long -> float -> double).

A column that has held only nulls so far has no type yet: it is not an Avro
field, only an entry of the record attribute ``nullColumns``, and becomes a
field (an added field) with its first value. Everything else that does not fit
is a mismatch, which the converter keeps aside rather than retype the column.

The functions here are pure: they compare and merge schema dicts (as
fastavro's ``parse_schema`` takes them), and never see values.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

#: Record attribute: columns seen with nulls only, as name attributes + pandasDtype.
ATTR_NULL_COLUMNS = "nullColumns"
#: On a mismatch field: the name of the field whose values it holds as JSON text.
ATTR_MISMATCH_OF = "mismatchOf"
MISMATCH_SUFFIX = "__mismatch"

# Attributes that change what a stored value means: equal types with different ones differ.
_MEANING_ATTRS = ("encoding", "timezone")

Fit = Literal["same", "cast_double", "widen"]


def value_types(field: Mapping[str, Any]) -> list[Any]:
    """The non-null branches of a field's type, in order."""
    t = field["type"]
    branches = t if isinstance(t, list) else [t]
    return [b for b in branches if b != "null"]


def _key(avro_type: Any) -> str:
    return json.dumps(avro_type, sort_keys=True)


def core(field: Mapping[str, Any]) -> tuple[str, ...]:
    """What must be equal for two fields to hold the same kind of value."""
    return (
        *(_key(t) for t in value_types(field)),
        *(f"{a}={field.get(a)}" for a in _MEANING_ATTRS),
    )


def fit(known: Mapping[str, Any], new: Mapping[str, Any]) -> Fit | None:
    """How values typed as `new` go into a column typed `known`; None: they do not.

    ``same``: as they are; ``cast_double``: ints written as doubles; ``widen``:
    the column must become `new` (long -> double)."""
    if core(known) == core(new):
        return "same"
    kt, nt = value_types(known), value_types(new)
    plain = all(known.get(a) is None and new.get(a) is None for a in _MEANING_ATTRS)
    if plain and kt == ["double"] and nt == ["long"]:
        return "cast_double"
    if plain and kt == ["long"] and nt == ["double"]:
        return "widen"
    if len(kt) > 1 and len(nt) == 1 and _key(nt[0]) in {_key(t) for t in kt} and (
        all(known.get(a) == new.get(a) for a in _MEANING_ATTRS)
    ):
        return "same"  # a reader union published over replicas that disagreed
    return None


def _name_key(attrs: Mapping[str, Any]) -> tuple[Any, Any]:
    return attrs.get("originalName"), attrs.get("originalNameType")


def field_index(schema: Mapping[str, Any] | None) -> dict[tuple[Any, Any], dict[str, Any]]:
    """The column fields of a schema by (original name, its type), envelope fields excluded."""
    if not schema:
        return {}
    return {_name_key(f): f for f in schema["fields"] if "originalName" in f}


def null_columns(schema: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The columns of a schema that have held nulls only (no Avro field yet)."""
    return list((schema or {}).get(ATTR_NULL_COLUMNS) or ())


def merge_field(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """One field that reads values written as `a` or as `b` (a reader field).

    The widening of `fit` when there is one; otherwise a union of both types, which
    Avro resolution also reads (each file's values match one branch)."""
    how = fit(a, b)
    if how in ("same", "cast_double"):
        return dict(a)
    if how == "widen":
        return {**b, "name": a["name"]}
    branches = list(value_types(a))
    seen = {_key(t) for t in branches}
    branches += [t for t in value_types(b) if _key(t) not in seen]
    return {**a, "type": ["null", *branches], "default": None}


def merge_schemas(schemas: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A reader schema for files written with any of `schemas` (same record name)."""
    if not schemas:
        return None
    merged = copy.deepcopy(dict(schemas[0]))
    for other in schemas[1:]:
        if other.get("name") != merged.get("name"):
            continue  # another shape (payload and tabular in one collection): not mergeable
        by_name = {f["name"]: i for i, f in enumerate(merged["fields"])}
        for f in other["fields"]:
            i = by_name.get(f["name"])
            if i is None:
                by_name[f["name"]] = len(merged["fields"])
                merged["fields"].append(copy.deepcopy(f))
            elif "originalName" in f:
                merged["fields"][i] = merge_field(merged["fields"][i], f)
        nulls = null_columns(merged) + null_columns(other)
        typed = set(field_index(merged))
        unique = {_name_key(c): c for c in nulls if _name_key(c) not in typed}
        if unique:
            merged[ATTR_NULL_COLUMNS] = list(unique.values())
        else:
            merged.pop(ATTR_NULL_COLUMNS, None)
    return merged
