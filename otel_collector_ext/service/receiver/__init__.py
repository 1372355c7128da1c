"""The OTLP logs receiver of `serve`: decoding, the transport-neutral core, gRPC and HTTP servers."""

from .core import BearerAuth, Busy, Limits, Outcome, Receiver, Sink, Status
from .grpc_server import GrpcReceiverServer
from .http_server import HttpReceiverServer
from .tls import TLSFiles

__all__ = ["BearerAuth", "Busy", "GrpcReceiverServer", "HttpReceiverServer", "Limits",
           "Outcome", "Receiver", "Sink", "Status", "TLSFiles"]
