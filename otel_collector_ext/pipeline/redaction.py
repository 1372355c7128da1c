"""Redaction: mask or hash chosen fields of collected data before it leaves the process.

Rules name JSON field paths (in JSON bodies, JSON text and dict/list payloads) and
tabular column names (DataFrame columns, keys of dict rows, CSV header names). They
run inside `Collector.collect()` on the private snapshot of the data, so the caller's
objects are never changed, and on every collection: HTTP payloads and custom logging.
When a body that should be redacted cannot be parsed (malformed or truncated JSON,
CSV that is not UTF-8), the body is dropped rather than recorded unredacted.

Path syntax: `customer.email`, `$.customer.email`, `items[*].card`, `items[0].card`,
`*.secret`, `meta["key.with.dots"]`. A name segment applied to a list applies to
each element, so `items.card` equals `items[*].card`. Keys with dots match as nested
names too, so `gen_ai.input.messages[*].parts[*].content` names the message text of a
`gen_ai` row (whose column is `gen_ai.input.messages`).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from exporters import contract as A

if TYPE_CHECKING:
    import pandas as pd

MASK = "mask"
HASH = "hash"
DEFAULT_MASK_VALUE = "***"
FLAG_REDACTED = "redacted"
FLAG_REDACTION_FAILED = "redaction_failed"

_WILDCARD = object()  # a path segment matching every key or index
_SEGMENT = re.compile(
    r"""\.?(?:
        (?P<name>[^.\[\]"']+)
      | \[(?P<index>\d+)\]
      | \[(?P<star>\*)\]
      | \[(?P<quote>["'])(?P<quoted>.*?)(?P=quote)\]
    )""",
    re.VERBOSE,
)

Path = tuple[Any, ...]  # str key, int index or _WILDCARD


def parse_path(text: str) -> Path:
    """`a.b[*].c` → ('a', 'b', WILDCARD, 'c'); ValueError on bad syntax."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a field path must be a non-empty string")
    rest = text.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    if not rest:
        raise ValueError(f"field path {text!r} names no field")
    segments: list[Any] = []
    pos = 0
    while pos < len(rest):
        match = _SEGMENT.match(rest, pos)
        if match is None or match.end() == pos or (pos and rest[pos] not in ".["):
            raise ValueError(f"field path {text!r}: cannot parse at {rest[pos:]!r}")
        if match["name"] is not None:
            name = match["name"].strip()
            segments.append(_WILDCARD if name == "*" else name)
        elif match["index"] is not None:
            segments.append(int(match["index"]))
        elif match["star"] is not None:
            segments.append(_WILDCARD)
        else:
            segments.append(match["quoted"])
        pos = match.end()
    return tuple(segments)


class Redactor:
    """Compiled redaction rules; `apply()` is what `Collector.collect()` calls."""

    def __init__(
        self,
        *,
        mask_fields: Sequence[str] = (),
        mask_columns: Sequence[str] = (),
        hash_fields: Sequence[str] = (),
        hash_columns: Sequence[str] = (),
        mask_value: str = DEFAULT_MASK_VALUE,
        hash_key: bytes | None = None,
    ) -> None:
        self.mask_value = mask_value
        self.hash_key = hash_key
        # Hash rules come last so a field named in both lists ends up hashed of the
        # original value, never hashed of the mask.
        self.columns: dict[str, str] = {c: MASK for c in mask_columns}
        self.columns.update({c: HASH for c in hash_columns})
        self.fields: list[tuple[Path, str]] = [(parse_path(p), MASK) for p in mask_fields]
        self.fields += [(parse_path(p), HASH) for p in hash_fields]
        if not self.columns and not self.fields:
            raise ValueError("redaction names no fields and no columns")

    def __repr__(self) -> str:
        return f"Redactor(fields={len(self.fields)}, columns={sorted(self.columns)})"

    # -- values ---------------------------------------------------------------

    def _replace(self, value: Any, action: str) -> Any:
        if value is None:
            return None
        if action == MASK:
            return self.mask_value
        if isinstance(value, str):
            text = value
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        else:
            text = str(value)
        data = text.encode("utf-8", "surrogatepass")
        if self.hash_key is not None:
            return hmac.new(self.hash_key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    # -- entry point ------------------------------------------------------------

    def apply(self, kind: str, body: Any, attributes: MutableMapping[str, Any]) -> Any:
        """The redacted `body` of a snapshot of `kind`; adds a flag to `attributes`.

        `body` is the Collector's private snapshot, so it may be changed in place.
        """
        changed: bool | str  # True, or the flag saying why the body could not be redacted
        if kind == A.KIND_DATAFRAME:
            changed = self._frame(body)
        elif kind == A.KIND_ROW:
            [body], changed = self._records([body])
        elif kind == A.KIND_ROWS:
            body, changed = self._records(body)
        elif kind == A.KIND_COLUMNS:
            changed = self._column_dict(body)
        elif kind in (A.KIND_JSON, A.KIND_TEXT, A.KIND_BYTES):
            body, changed = self._payload(kind, body, attributes.get(A.CONTENT_TYPE))
        else:  # ndarray: no names to match
            return body
        if changed:
            _add_flag(attributes, FLAG_REDACTED if changed is True else changed)
        return body

    # -- tabular ----------------------------------------------------------------

    def _frame(self, frame: pd.DataFrame) -> bool:
        import pandas as pd  # only DataFrames need it; config imports this module

        changed = False
        for column in frame.columns:
            action = self.columns.get(str(column))
            if action is None:
                continue
            values = frame[column]
            frame[column] = pd.Series(
                [None if _missing(v) else self._replace(v, action) for v in values],
                index=frame.index, dtype=object,
            )
            changed = True
        return changed

    def _records(self, records: list[Any]) -> tuple[list[Any], bool]:
        changed = False
        out = []
        for record in records:
            if isinstance(record, dict):
                for key in record.keys() & self.columns.keys():
                    record[key] = self._replace(record[key], self.columns[key])
                    changed = True
                for path, action in self.fields:
                    record, found = self._at(record, path, action)
                    changed |= found
            out.append(record)
        return out, changed

    def _column_dict(self, columns: dict[str, list[Any]]) -> bool:
        changed = False
        for key in columns.keys() & self.columns.keys():
            action = self.columns[key]
            columns[key] = [None if _missing(v) else self._replace(v, action) for v in columns[key]]
            changed = True
        return changed

    # -- JSON paths -------------------------------------------------------------

    def _at(self, node: Any, path: Path, action: str) -> tuple[Any, bool]:
        """(`node` with what `path` names redacted, whether anything was found).

        Containers on the way are copied, never changed: nested values of a
        snapshot may still be shared with the caller.
        """
        head, rest = path[0], path[1:]
        if isinstance(node, dict) and isinstance(head, str) and head not in node:
            # Dotted keys (gen_ai rows: "gen_ai.input.messages") match as nested names.
            joined = head
            for i, segment in enumerate(rest):
                if not isinstance(segment, str):
                    break
                joined = f"{joined}.{segment}"
                if joined in node:
                    return self._at(node, (joined, *rest[i + 1:]), action)
        if isinstance(node, list) and not isinstance(head, int) and head is not _WILDCARD:
            results = [self._at(item, path, action) for item in node]
            if any(found for _, found in results):
                return [value for value, _ in results], True
            return node, False
        if isinstance(node, dict):
            keys: Iterable[Any] = list(node) if head is _WILDCARD else [head] if head in node else []
        elif isinstance(node, list) and not isinstance(head, str):
            keys = range(len(node)) if head is _WILDCARD else (
                [head] if head < len(node) else [])
        else:
            return node, False
        copy: Any = None
        for key in keys:
            if rest:
                value, found = self._at(node[key], rest, action)
            else:
                value, found = self._replace(node[key], action), True
            if found:
                if copy is None:
                    copy = dict(node) if isinstance(node, dict) else list(node)
                copy[key] = value
        return (node, False) if copy is None else (copy, True)

    # -- text and bytes payloads -------------------------------------------------

    def _payload(self, kind: str, body: Any, content_type: Any) -> tuple[Any, bool | str]:
        media = str(content_type or "").split(";", 1)[0].strip().lower()
        if "csv" in media:
            return self._csv(kind, body)
        claims_json = kind == A.KIND_JSON or "json" in media
        if not self.fields:
            return body, False
        if not claims_json:
            # Untyped text that looks like JSON is redacted too; other text is left alone.
            head = body.lstrip()[:1]
            if media or head not in ("{", "[", b"{", b"["):
                return body, False
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if claims_json:  # cannot see the fields: never record them unredacted
                return _empty(kind), FLAG_REDACTION_FAILED
            return body, False
        found = False
        for path, action in self.fields:
            value, hit = self._at(value, path, action)
            found |= hit
        if not found:
            return body, False
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return (text if kind == A.KIND_TEXT else text.encode("utf-8", "surrogatepass")), True

    def _csv(self, kind: str, body: Any) -> tuple[Any, bool | str]:
        if not self.columns:
            return body, False
        try:
            text = body if isinstance(body, str) else bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return _empty(kind), FLAG_REDACTION_FAILED
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return body, False
        targets = [(i, self.columns[name]) for i, name in enumerate(rows[0]) if name in self.columns]
        if not targets:
            return body, False
        for row in rows[1:]:
            for i, action in targets:
                if i < len(row) and row[i] != "":
                    row[i] = self._replace(row[i], action)
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(rows)
        result = out.getvalue()
        if not text.endswith(("\n", "\r")):
            result = result.rstrip("\r\n")
        return (result if kind == A.KIND_TEXT else result.encode("utf-8")), True


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, bool, int)):
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values, not missing
        return False


def _empty(kind: str) -> Any:
    return "" if kind == A.KIND_TEXT else b""


def _add_flag(attributes: MutableMapping[str, Any], flag: str) -> None:
    flags = attributes.get(A.FLAGS) or ()
    if isinstance(flags, str):
        flags = (flags,)
    attributes[A.FLAGS] = (*flags, flag)
