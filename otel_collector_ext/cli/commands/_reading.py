"""What the reading commands (ls, read, stats, report) share: options, times, errors.

Bad input (no destination, an unknown collection, a date that does not parse)
ends with one line on stderr and exit code 2; storage that cannot be reached
ends with one line and exit code 1; never a traceback. Skipped or damaged
files are reported as one ``warning:`` line each and do not stop the command.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from exporters.avro.partitioning import safe_segment
from exporters.settings import DESTINATION_ENV
from exporters.storage import LocalStorage, Storage, StorageError
from otel_collector_ext.reading.catalog import has_collection
from otel_collector_ext.reading.readback import (
    ReadWarning,
    is_blob_destination,
    open_reader,
    time_range,
)

_RELATIVE = re.compile(r"^(?:-\s*(\d+(?:\.\d+)?)\s*([smhdw])|(\d+(?:\.\d+)?)\s*([smhdw])\s+ago)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(Exception):
    """Bad input from the command line: one line, exit code 2."""


def _one_line_error(parser: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    return error


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """--destination and the Blob credentials; parse errors become one line."""
    parser.error = _one_line_error(parser)  # type: ignore[method-assign]
    g = parser.add_argument_group("storage")
    g.add_argument("-d", "--destination", default=os.environ.get(DESTINATION_ENV),
                   help="local folder, az://container[/prefix] or "
                        "https://account.blob.core.windows.net/container[/prefix] "
                        f"(default: ${DESTINATION_ENV})")
    g.add_argument("--connection-string", help="Azure Storage connection string "
                   "(default: $AZURE_STORAGE_CONNECTION_STRING)")
    g.add_argument("--sas-token", help="SAS token for an https:// destination")
    g.add_argument("--account-key", help="account key for an https:// destination")
    g.add_argument("--managed-identity-client-id",
                   help="client id of a user-assigned managed identity (https:// destinations)")
    g.add_argument("--workers", type=int, default=8, help="files read in parallel (default 8)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")


def add_scope_arguments(parser: argparse.ArgumentParser, *, collection: str = "optional",
                        required: bool = True, multiple: bool = False) -> None:
    """--endpoint, --deployment, --collection, --start, --end."""
    g = parser.add_argument_group("what to read")
    g.add_argument("-e", "--endpoint", required=required, help="endpoint name")
    g.add_argument("-p", "--deployment", required=required, help="deployment name")
    if collection != "none":
        g.add_argument("-c", "--collection", required=collection == "required",
                       action="append" if multiple else "store",
                       help="collection name" + (" (repeat for several; default: all)"
                                                 if multiple else ""))
    g.add_argument("--start", help="first event time, inclusive: ISO date/time (UTC unless it "
                   "has an offset), 'today', 'yesterday', 'now', or '2h ago' / '-2h' (s, m, h, d, w)")
    g.add_argument("--end", help="event time to stop before (exclusive), same forms as --start")


def parse_time(text: str | None, what: str, now: datetime | None = None) -> datetime | None:
    """A command-line time: ISO text, today/yesterday/now, or relative like '2h ago' or '-2h'."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    word = text.strip().lower()
    if word == "now":
        return now
    if word in ("today", "yesterday"):
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight - timedelta(days=1) if word == "yesterday" else midnight
    m = _RELATIVE.match(word)
    if m:
        amount, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return now - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        return time_range(text, None)[0]
    except ValueError:
        raise UsageError(f"invalid --{what} {text!r}: use an ISO date/time like 2026-03-01 or "
                         "2026-03-01T10:00, or 'today', 'now', '2h ago'") from None


def window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """The [start, end) of the command line, checked."""
    lo, hi = parse_time(args.start, "start"), parse_time(args.end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise UsageError(f"--start {lo:%Y-%m-%d %H:%M:%S} is not before --end {hi:%Y-%m-%d %H:%M:%S}")
    return lo, hi


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Blob options given on the command line (none for local folders)."""
    names = ("connection_string", "sas_token", "account_key", "managed_identity_client_id")
    return {n: getattr(args, n) for n in names if getattr(args, n, None)}


def show_progress(args: argparse.Namespace) -> bool:
    return sys.stderr.isatty() if args.progress is None else bool(args.progress)


@contextmanager
def opened(args: argparse.Namespace) -> Iterator[Storage]:
    """The destination's storage, for reading; UsageError if it is not given or invalid."""
    if not args.destination:
        raise UsageError(f"no destination: pass --destination or set ${DESTINATION_ENV}")
    options = storage_options(args)
    if options and not is_blob_destination(args.destination):
        raise UsageError("--connection-string, --sas-token, --account-key and "
                         "--managed-identity-client-id apply to Blob destinations only")
    try:
        storage = open_reader(args.destination, options)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        storage.close()
        problem = "is not a folder" if storage.root.exists() else "does not exist"
        raise UsageError(f"destination {args.destination} {problem}")
    try:
        yield storage
    finally:
        storage.close()


def require_collection(storage: Storage, args: argparse.Namespace, collection: str) -> None:
    """UsageError unless the collection has data."""
    if not has_collection(storage, args.endpoint, args.deployment, collection):
        raise UsageError(
            f"no collection {collection!r} for endpoint {args.endpoint!r}, deployment "
            f"{args.deployment!r} in {describe(args)}; {existing(storage, args)}"
        )


def existing(storage: Storage, args: argparse.Namespace) -> str:
    """What is there instead, at the first level the arguments miss: the endpoints, an
    endpoint's deployments, or a deployment's collections (for a wrong name's message)."""
    endpoint, deployment = getattr(args, "endpoint", None), getattr(args, "deployment", None)
    tree = folder_tree(storage)
    if not tree:
        return f"{describe(args)} holds no collected data"
    if endpoint is None or safe_segment(endpoint) not in tree:
        return "endpoints there: " + ", ".join(sorted(tree))
    deployments = tree[safe_segment(endpoint)]
    if deployment is None or safe_segment(deployment) not in deployments:
        return f"deployments of {endpoint!r}: " + ", ".join(sorted(deployments))
    return f"collections of {endpoint!r}/{deployment!r}: " + ", ".join(
        sorted(deployments[safe_segment(deployment)]))


MAX_LISTED = 20_000  # objects looked at for a wrong name's message; a hint, not a census


def folder_tree(storage: Storage) -> dict[str, dict[str, set[str]]]:
    """endpoint → deployment → collections, from the first MAX_LISTED objects' paths."""
    tree: dict[str, dict[str, set[str]]] = {}
    for n, info in enumerate(storage.list("")):
        if n >= MAX_LISTED:
            break
        parts = info.path.split("/")
        if len(parts) >= 5 and parts[-1].endswith(".avro"):
            tree.setdefault(parts[0], {}).setdefault(parts[1], set()).add(parts[2])
    return tree


def describe(args: argparse.Namespace) -> str:
    return str(args.destination).split("?", 1)[0]


def run_command(parser_prog: str, body: Callable[[], int]) -> int:
    """Run `body`, turning errors into one line and an exit code, and warnings into lines."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", ReadWarning)
        warnings.showwarning = show
        try:
            return body()
        except UsageError as e:
            print(f"{parser_prog}: error: {e}", file=sys.stderr)
            return 2
        except (ValueError, TypeError) as e:
            print(f"{parser_prog}: error: {e}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `... | head`: the reader has gone, nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except (StorageError, OSError) as e:
            print(f"{parser_prog}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130


def format_bytes(n: int) -> str:
    """1,234,567 -> '1.2 MB' (powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{n} B"


def print_table(rows: list[list[Any]], header: list[str], right: set[int] | None = None) -> None:
    """A plain aligned text table on stdout."""
    right = right or set()
    texts = [[str(h) for h in header]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in texts) for i in range(len(header))]
    for row in texts:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())
