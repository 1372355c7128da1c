"""The storage backends' options, each with its key, default and environment variable.

`open_storage(destination, **options)` checks the options against the model of the
backend the destination chooses: `LocalStorageOptions` for a folder, `BlobStorageOptions`
(the account, its timeouts and the durable spool in front of it) for ``az://`` and
``https://``. The Avro exporter's ``storage_options`` are these.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..config_model import ConfigModel, above, between, nonblank, one_of
from ..settings import SPOOL_DIR_ENV

Seconds = Annotated[float, above(0, 86_400, "a number of seconds")]
Bytes = Annotated[int, between(1, 1 << 50, "a number of bytes")]


class LocalStorageOptions(ConfigModel):
    """A local folder (or file:// URL)."""

    fsync: bool = Field(default=False, description="fsync every append (slower; survives power loss)")


class BlobStorageOptions(ConfigModel):
    """Azure Blob Storage behind a durable local spool (docs: Azure Blob Storage)."""

    connection_string: str | None = Field(
        default=None, description="For az:// destinations. Default from "
        "$AZURE_STORAGE_CONNECTION_STRING.")
    sas_token: str | None = Field(default=None, description="For https:// destinations.")
    account_key: str | None = Field(default=None, description="For https:// destinations.")
    managed_identity_client_id: str | None = Field(
        default=None, description="DefaultAzureCredential's user-assigned identity.")
    mode: Annotated[str, one_of(("append", "roll"))] = Field(
        default="append", description="append blobs, or block blobs committed per time/size window")
    create_container: bool = True
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 60.0
    lookup_timeout: Seconds = Field(default=5.0, description="Listing and size calls.")
    spool: bool = Field(default=True, description="Write through a durable local spool (false: "
                        "directly, e.g. to read back)")
    spool_dir: Annotated[str, nonblank("must be a folder path")] | None = Field(
        default=None, description=f"Default: ${SPOOL_DIR_ENV} or ~/.cache/otel-collector-ext/spool, "
        "then a folder per destination.")
    spool_max_bytes: Bytes = 1 << 30
    spool_max_ops: Annotated[int, between(1, 100_000_000)] = 100_000
    spool_full_policy: Annotated[str, one_of(("drop", "block"))] = "drop"
    spool_block_timeout: Seconds = 5.0
    spool_segment_bytes: Bytes | None = None
    window_seconds: Annotated[float, above(0, 86_400, "a number of seconds", or_equal=True)] = Field(
        default=0.0, description="Roll mode: upload at most this often (default there: 300)")
    window_bytes: Bytes | None = Field(default=None, description="Roll mode default: 64 MiB")
    upload_max_backoff: Seconds = 30.0
    close_timeout: Seconds = 10.0


#: Options only code can give (objects): a credential, a retry policy.
RUNTIME_OPTIONS = frozenset({"credential", "retry"})
#: The spool's options, by the name `SpooledStorage` gives them.
SPOOL_OPTIONS = {
    "spool_max_bytes": "max_bytes", "spool_max_ops": "max_ops",
    "spool_full_policy": "full_policy", "spool_block_timeout": "block_timeout",
    "spool_segment_bytes": "segment_bytes", "window_seconds": "window_seconds",
    "window_bytes": "window_bytes", "upload_max_backoff": "max_backoff",
    "close_timeout": "close_timeout",
}
#: `BlobStorage`'s own options (the rest are the spool's).
BLOB_OPTIONS = frozenset(set(BlobStorageOptions.keys()) - set(SPOOL_OPTIONS)
                         - {"spool", "spool_dir"})


def storage_options_schema() -> dict[str, object]:
    """The JSON Schema of ``storage_options``: a folder's, or a Blob destination's."""
    return {"anyOf": [LocalStorageOptions.model_json_schema(),
                      BlobStorageOptions.model_json_schema()]}
