"""OTLP over gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export` on grpcio.

The method is registered with raw-bytes (de)serialisers so a malformed request is
ours to answer (INVALID_ARGUMENT with a short message) rather than grpcio's
INTERNAL. When the pipeline is full, or more requests arrive than the receiver
decodes at once (`Admission`), the answer is UNAVAILABLE with a RetryInfo trailer,
which the released OTLP exporters honour as their back-off delay. grpcio's own
`maximum_concurrent_rpcs` is not used: it answers RESOURCE_EXHAUSTED.

The method is registered as client-streaming: on the wire a unary call is the same
(one message), but the handler sees the call before its message is read, so a call
refused for overload costs no memory for its body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo

from .admission import RETRY_AFTER_SECONDS, Admission
from .core import Outcome, Receiver, Status, success_response
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
                 max_workers: int = 32, admission: Admission | None = None) -> None:
        self.receiver = receiver
        self._own_admission = admission is None
        self.admission = admission or Admission()
        self.stopping = False
        max_bytes = receiver.limits.max_request_bytes
        # Threads answer calls; how many are decoded at once is the admission's bound, so
        # threads beyond it refuse at once (UNAVAILABLE) instead of queueing calls.
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.stream_unary_rpc_method_handler(self._export)}
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
        """Refuse new calls at once; let calls in progress finish within `grace` seconds,
        then abandon them (cancelled, so their senders retry)."""
        self.stopping = True
        self._server.stop(grace).wait(grace + 5)
        if self._own_admission:
            self.admission.shutdown()

    def _export(self, messages: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        receiver = self.receiver
        metadata = dict(context.invocation_metadata() or ())
        if not receiver.authorized(metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        if self.stopping or not self.admission.try_enter():
            receiver.counters.add(requests=1, requests_busy=1)
            outcome = Outcome(Status.BUSY, "shutting down" if self.stopping else "busy",
                              retry_after=RETRY_AFTER_SECONDS)
        else:
            try:
                outcome = self._decode(messages, context)
            finally:
                self.admission.leave()
        if outcome.status is Status.OK:
            return success_response(outcome).SerializeToString()
        if outcome.status is Status.BUSY:
            context.set_trailing_metadata(((
                "google.rpc.retryinfo-bin",
                RetryInfo(retry_delay=_duration(outcome.retry_after)).SerializeToString(),
            ),))
        context.abort(_CODES[outcome.status], outcome.message or outcome.status.value)
        raise AssertionError("unreachable")  # abort raises


    def _decode(self, messages: Iterator[bytes], context: grpc.ServicerContext) -> Outcome:
        receiver = self.receiver
        request = next(messages, None)  # a unary call: exactly one message
        if request is None or next(messages, None) is not None:
            return receiver.refuse(Status.INVALID, "an Export call carries one request")
        try:
            return self.admission.submit(receiver.export_bytes, request).result()
        except RuntimeError:  # the pool is shut down: stopping
            return Outcome(Status.BUSY, "shutting down", retry_after=RETRY_AFTER_SECONDS)


def _duration(seconds: float) -> Any:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
