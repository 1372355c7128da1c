"""The OTLP/HTTP receiver cuts clients that trickle a request, so they cannot hold it."""

from __future__ import annotations

import socket
import threading
import time

from otel_collector_ext.service.receiver.core import Receiver
from otel_collector_ext.service.receiver.http_server import HttpReceiverServer


class Sink:
    def accept(self, records: object, request: object = None) -> None:
        pass


def test_trickling_clients_are_cut_and_others_are_served() -> None:
    server = HttpReceiverServer(Receiver(Sink()), "127.0.0.1", 0, max_connections=2,
                                idle_timeout=0.5)
    server.start()
    port = server.address[1]
    stop = threading.Event()
    cut: list[bool] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            try:
                for byte in b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * 10_000:
                    if stop.is_set():
                        return
                    s.send(bytes([byte]))
                    stop.wait(0.2)  # a byte well inside idle_timeout: never idle
            except OSError:
                cut.append(True)

    slow = [threading.Thread(target=trickle) for _ in range(2)]  # every connection slot
    for t in slow:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while len(cut) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling until the receiver has cut both
        assert len(cut) == 2, "trickling clients must be cut after request_timeout"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        stop.set()
        for t in slow:
            t.join(10)
        server.stop(1)
