"""The base of every configuration model: strict pydantic models whose errors name the key.

Each component (the scoring configuration, the service configuration, every exporter
and storage backend) describes its options, defaults and environment variables in one
model built on `ConfigModel`. Validation then gives one error message that names the
key path (``data_collector.collections.a.enabled``) and what is allowed, and the same
models generate the JSON Schemas published in ``schemas/``.

The value types below (`Rate`, `Flag`, `between`, …) carry their own message, so the
message a user reads and the schema an editor uses come from one definition.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from .contract import MAX_NAME_LENGTH, check_name

M = TypeVar("M", bound=BaseModel)
_UNKNOWN_KEY = "unknown_key"
_NOT_A_MAPPING = "not_a_mapping"


class ConfigModel(BaseModel):
    """A block of configuration: unknown keys are refused naming the allowed ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise PydanticCustomError(_NOT_A_MAPPING, "must be a mapping, not {kind}",
                                      {"kind": type(data).__name__})
        allowed = cls.keys()
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise PydanticCustomError(
                    _UNKNOWN_KEY, "unknown key {key} ({hint}allowed: {allowed})",
                    {"key": str(key), "hint": hint, "allowed": ", ".join(sorted(allowed))})
        return data

    @classmethod
    def keys(cls) -> list[str]:
        """The keys this block accepts, as written in a file."""
        return [f.alias or name for name, f in cls.model_fields.items()]

    @classmethod
    def resolve(cls: type[M], given: Mapping[str, Any], *, prefix: str = "",
                environ: Mapping[str, str] | None = None) -> M:
        """Each option from `given` (an argument or a file's key), else from its environment
        variables (`env_field`), else its default; ValueError names the key or variable."""
        environ = os.environ if environ is None else environ
        values = {k: v for k, v in given.items() if v is not None}
        sources: dict[str, str] = {}
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if key in values:
                continue
            for variable in env_names(info):
                text = environ.get(variable, "").strip()
                if text:
                    values[key], sources[key] = _from_text(text, info.default), variable
                    break
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]["loc"]
            source: str | None = sources.get(str(first[0])) if first else None
            if source is not None:
                raise ValueError(f"{source}={environ[source].strip()!r}: "
                                 f"{error_message(e)}") from None
            raise ValueError(error_message(e, prefix=prefix)) from None


def env_field(default: Any, *variables: str, description: str = "") -> Any:
    """A field read from the first set one of `variables` when not given (see `resolve`)."""
    said = f" Default from ${' or $'.join(variables)}." if variables else ""
    return Field(default, description=(description + said).strip(),
                 json_schema_extra={"env": list(variables)})


def env_names(info: Any) -> list[str]:
    """The environment variables of a field (`env_field`), first wins."""
    extra = info.json_schema_extra
    return list(extra.get("env", ())) if isinstance(extra, dict) else []


_ON, _OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _from_text(text: str, default: Any) -> Any:
    # An environment variable is text: read it as the default's type, when it parses.
    try:
        if isinstance(default, bool):
            word = text.lower()
            return word not in _OFF if word in _OFF | _ON else as_flag(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        pass
    return text


def key_path(loc: tuple[int | str, ...]) -> str:
    """``a.b[0].c`` from a pydantic error location (``a.b key 'x'`` for a bad mapping key)."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif loc[i + 1:i + 2] == ("[key]",):
            out += f" key {part!r}"
        else:
            out += f".{part}" if out else str(part)
    return out


def error_message(error: ValidationError, *, prefix: str = "",
                  root: str = "configuration") -> str:
    """One message for the first error: the key path (under `prefix`), then what is wrong
    or allowed; `root` names the whole block when the error is about it."""
    first = error.errors(include_url=False)[0]
    path = key_path(tuple(p for p in first["loc"] if not _is_tag(p)))
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind == _UNKNOWN_KEY:
        full = f"{path}.{ctx['key']}" if path else ctx["key"]
        return f"unknown key {full} ({ctx['hint']}allowed: {ctx['allowed']})"
    message = str(ctx["error"]) if kind == "value_error" else _plain(first["msg"], ctx, kind)
    if not path:
        path = root
    return f"{path} {message}" if message.startswith(("must ", "is ")) else f"{path}: {message}"


def _is_tag(part: int | str) -> bool:
    # pydantic adds the name of the union member or function to the location.
    return isinstance(part, str) and (part.startswith("function-") or part in (
        "str", "int", "float", "bool", "none"))


_PLAIN = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "missing": "is required",
}


def _plain(message: str, ctx: Mapping[str, Any], kind: str) -> str:
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", "")
    return _PLAIN.get(kind, message)


def validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    """`model` from `data` (the block at key `prefix`); ValueError with `error_message`."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(error_message(e, prefix=prefix)) from None


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(model: type[BaseModel], *, title: str,
                parts: Mapping[str, type[BaseModel]] = {}) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON Schema of `model` (validation side) with the definitions of `parts` beside
    its own; returns the schema and, per name in `parts`, the reference to its definition."""
    from pydantic.json_schema import models_json_schema

    named: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (model, "validation"), *((m, "validation") for m in parts.values())]
    refs, top = models_json_schema(named, ref_template="#/$defs/{model}")
    defs = top.get("$defs", {})
    root = dict(defs.pop(model.__name__))
    schema = {"$schema": JSON_SCHEMA_DIALECT, **root, "title": title, "$defs": defs}
    return schema, {name: refs[(m, "validation")]["$ref"] for name, m in parts.items()}


# ---------------------------------------------------------------------------
# Value types with their message and their schema
# ---------------------------------------------------------------------------


class Checked:
    """Annotation metadata: `check` runs before pydantic's own validation (its ValueError is
    the message), and `schema` is added to the field's JSON Schema. Used as
    ``Annotated[int, between(1, 10)]``, so type checkers see a plain type."""

    def __init__(self, check: Callable[[Any], Any], schema: Mapping[str, Any] | None = None) -> None:
        self.check = check
        self.schema = dict(schema or {})

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        out = handler(schema)
        out.update(self.schema)
        return out


class SchemaOf:
    """Annotation metadata: the field's JSON Schema is `build()`, made only when a schema
    is generated (so importing a model costs nothing for it)."""

    def __init__(self, build: Callable[[], Mapping[str, Any]]) -> None:
        self.build = build

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return dict(self.build())


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"must be a number from 0 to 1, not {value!r}")
    return float(value)


#: A share from 0 to 1.
Rate = Annotated[float, Checked(_rate, {"minimum": 0, "maximum": 1})]


def as_flag(value: Any) -> bool:
    # Azure ML's YAML writes enabled: 'True' / 'False' as strings.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"must be true or false, not {value!r}")


#: true/false, or Azure ML's 'True'/'False' strings.
Flag = Annotated[bool, BeforeValidator(as_flag), WithJsonSchema({"anyOf": [
    {"type": "boolean"},
    {"type": "string", "pattern": r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"},
]})]


def between(low: int, high: int, what: str = "an integer") -> Checked:
    """An int from `low` to `high`, never a bool: ``Annotated[int, between(1, 10)]``."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be {what} from {low} to {high}, not {value!r}")
        return value

    return Checked(check, {"minimum": low, "maximum": high})


def above(low: float, high: float, what: str = "a number", *, or_equal: bool = False) -> Checked:
    """A number above `low` (or equal, with `or_equal`) and at most `high`:
    ``Annotated[float, above(0, 60)]``."""
    lowest = f"from {low}" if or_equal else f"above {low}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (low <= value if or_equal else low < value) or not value <= high:
            raise ValueError(f"must be {what} {lowest} to {high}, not {value!r}")
        return float(value)

    return Checked(check, {"minimum" if or_equal else "exclusiveMinimum": low, "maximum": high})


def one_of(values: tuple[str, ...], *, fold_case: bool = False) -> Checked:
    """One of `values` (compared lower-cased with `fold_case`): ``Annotated[str, one_of(...)]``."""

    def check(value: Any) -> Any:
        chosen = value.strip().lower() if fold_case and isinstance(value, str) else value
        if chosen not in values:
            raise ValueError(f"must be one of {', '.join(values)}, not {value!r}")
        return chosen

    return Checked(check, {"enum": list(values)})


def _name(value: Any) -> str:
    try:
        return check_name(value, "name")
    except (TypeError, ValueError) as e:
        raise ValueError(str(e)) from None


#: A safe name (endpoint, deployment, collection, instance): see `contract.check_name`.
Name = Annotated[str, Checked(_name, {
    "minLength": 1, "maxLength": MAX_NAME_LENGTH,
    "pattern": r"^[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_\-])?$"})]


def strings(message: str, accept: Callable[[str], bool] = bool) -> Checked:
    """A list of strings each passing `accept` (null: empty): ``Annotated[list[str], ...]``."""

    def check(value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and accept(v) for v in value):
            raise ValueError(message)
        return value

    return Checked(check)


def nonblank(message: str) -> Checked:
    """A non-blank string; `message` says what it names: ``Annotated[str, nonblank(...)]``."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(message)
        return value

    return Checked(check, {"minLength": 1})
