"""OTLP over gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export` on grpcio.

The method is registered with raw-bytes (de)serialisers so a malformed request is
ours to answer (INVALID_ARGUMENT with a short message) rather than grpcio's
INTERNAL. When the pipeline is full the answer is UNAVAILABLE with a RetryInfo
trailer, which the released OTLP exporters honour as their back-off delay.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)

from .core import Receiver, Status
from .decode import RequestError, parse_protobuf
from .tls import TLSFiles

_log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"

_CODES = {
    Status.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Status.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,  # retrying would not help
    Status.BUSY: grpc.StatusCode.UNAVAILABLE,
    Status.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Status.INTERNAL: grpc.StatusCode.INTERNAL,
}


class GrpcReceiverServer:
    """Serves the OTLP logs service for `receiver` on `host:port` (port 0: any free port)."""

    def __init__(self, receiver: Receiver, host: str, port: int, *, tls: TLSFiles | None = None,
                 max_workers: int = 8) -> None:
        self.receiver = receiver
        max_bytes = receiver.limits.max_request_bytes
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=max_workers * 4,
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if tls is not None:
                bound = self._server.add_secure_port(address, tls.grpc_credentials())
            else:
                bound = self._server.add_insecure_port(address)
        except RuntimeError:  # grpcio's "failed to bind": a port taken since it was checked
            bound = 0
        if not bound:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        self.address = (host, bound)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float) -> None:
        """Refuse new calls at once; let calls in progress finish within `grace` seconds."""
        self._server.stop(grace).wait(grace + 5)

    def _export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        receiver = self.receiver
        metadata = dict(context.invocation_metadata() or ())
        if not receiver.authorized(metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        try:
            parsed = parse_protobuf(request, max_depth=receiver.limits.max_depth)
        except RequestError as e:
            outcome = receiver.refuse(Status.INVALID, str(e))
        else:
            outcome = receiver.export(parsed)
        if outcome.status is Status.OK:
            response = ExportLogsServiceResponse()
            if outcome.rejected:
                response.partial_success.CopyFrom(ExportLogsPartialSuccess(
                    rejected_log_records=outcome.rejected, error_message=outcome.message))
            return response.SerializeToString()
        if outcome.status is Status.BUSY:
            context.set_trailing_metadata(((
                "google.rpc.retryinfo-bin",
                RetryInfo(retry_delay=_duration(outcome.retry_after)).SerializeToString(),
            ),))
        context.abort(_CODES[outcome.status], outcome.message or outcome.status.value)
        raise AssertionError("unreachable")  # abort raises


def _duration(seconds: float) -> Any:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
