"""The record contract: the attribute and event names this project writes and reads, and
the rules for the names that become folder names in storage.

They are part of the public contract (documented in the README): exporters, the
collector service and any other OTLP consumer rely on them, so they never change
meaning once released. Endpoint, deployment and collection names end up in paths, so
they are checked when configured or constructed (`check_name`): a bad name is a clear
error up front, never a file written outside the storage root.
"""

import re

EVENT_NAME_PREFIX = "ml.inference."

COLLECTION = "ml.inference.collection"
ENDPOINT = "ml.inference.endpoint"
DEPLOYMENT = "ml.inference.deployment"
MODEL_VERSION = "ml.inference.model_version"
CORRELATION_ID = "ml.inference.correlation_id"
PAYLOAD_KIND = "ml.inference.payload_kind"
CONTENT_TYPE = "ml.inference.content_type"
# On tabular records of a collection with a declared schema: the declaration as JSON text
# ({"column": "type", ...}), so that whichever exporter or `serve` stores them types them alike.
SCHEMA = "ml.inference.schema"

# Set by the HTTP payload middleware on `request` / `response` records.
HTTP_METHOD = "http.request.method"
HTTP_PATH = "url.path"
HTTP_QUERY = "url.query"
HTTP_STATUS = "http.response.status_code"
HTTP_LATENCY_MS = "ml.inference.latency_ms"
HTTP_HEADERS_PREFIX = "ml.inference.header."
BODY_SIZE = "ml.inference.body_size"
BODY_TRUNCATED = "ml.inference.body_truncated"
BODY_REF = "ml.inference.body_ref"
FLAGS = "ml.inference.flags"

# Payload kinds. Tabular kinds become one Avro record per row; the others one
# record per payload.
KIND_DATAFRAME = "dataframe"
KIND_ROW = "row"  # dict of scalars
KIND_COLUMNS = "columns"  # dict of equal-length lists
KIND_ROWS = "rows"  # list of dicts
KIND_NDARRAY = "ndarray"
KIND_TEXT = "text"
KIND_BYTES = "bytes"
KIND_JSON = "json"

TABULAR_KINDS = frozenset({KIND_DATAFRAME, KIND_ROW, KIND_COLUMNS, KIND_ROWS, KIND_NDARRAY})
PAYLOAD_KINDS = frozenset({KIND_TEXT, KIND_BYTES, KIND_JSON})

# The collection of GenAI calls (otel_collector_ext.genai): one typed row per model call,
# and the upstream OpenTelemetry GenAI event that becomes such a row.
GEN_AI_COLLECTION = "gen_ai"
GEN_AI_EVENT_NAME = "gen_ai.client.inference.operation.details"

# Resource attribute naming the writing replica; becomes part of file names.
INSTANCE_ID = "service.instance.id"

#: Set from the configuration and by collect() itself: where a record is stored and what
#: it joins with. Extra attributes passed to collect() may not set them.
RESERVED = frozenset({COLLECTION, ENDPOINT, DEPLOYMENT, MODEL_VERSION, CORRELATION_ID,
                      PAYLOAD_KIND, INSTANCE_ID})


def event_name(collection: str) -> str:
    """The OTel event name of a record of `collection`."""
    return EVENT_NAME_PREFIX + collection


def collection_of(record: object) -> str | None:
    """The collection attribute of a (readable) log record, or None when it has none (a
    record that is not inference data, or not a record at all)."""
    try:
        attributes = record.log_record.attributes  # type: ignore[attr-defined]
        value = attributes.get(COLLECTION) if attributes else None
    except AttributeError:
        return None
    return value if isinstance(value, str) and value else None

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
