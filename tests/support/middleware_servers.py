"""Real servers and raw clients for the payload-logging middleware tests.

`serve_asgi` runs an ASGI app under uvicorn in a child process, on a loopback socket
the test binds first (so there is no free-port race); the child flushes its records
when it exits. `serve_wsgi` runs a WSGI app under werkzeug's threaded server in
this process. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from werkzeug.serving import make_server

from tests.conftest import ROOT, python_env

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

_LAUNCH_UVICORN = """
import socket, sys, uvicorn
sock = socket.socket(fileno=int(sys.argv[1]))
config = uvicorn.Config(sys.argv[2], log_level="warning", timeout_graceful_shutdown=10)
uvicorn.Server(config).run(sockets=[sock])
"""


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, httpx.HTTPError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling interval, not synchronisation


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class ServerProcess:
    """A uvicorn child process; `url` to talk to it, `stop()` to end it and flush."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.stderr = ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as Kubernetes sends; uvicorn re-raises it after a graceful shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
            raise AssertionError(f"server did not stop in {timeout}s:\n{self.stderr}") from None
        return self.process.returncode


@contextmanager
def serve_asgi(app: str, config: dict[str, Any], workdir: Path) -> Iterator[ServerProcess]:
    """Run `app` ("module:attribute") under uvicorn with `config`, in a child process."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    sock = loopback_socket()
    host, port = sock.getsockname()
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH_UVICORN, str(sock.fileno()), app],
        cwd=ROOT,
        env=python_env(OTEL_COLLECTOR_EXT_CONFIG=str(config_path)),
        pass_fds=[sock.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sock.close()  # the child holds its own copy
    server = ServerProcess(process, f"http://{host}:{port}")
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.communicate()[1]}")
            return httpx.get(server.url + "/health", timeout=2).status_code == 200

        wait_until(ready, 60, "the server to start")
        yield server
    finally:
        if process.poll() is None:
            server.stop()


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Run a WSGI app under werkzeug's threaded server in this process; yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].split(":")
    return host, int(port)


def raw_exchange(url: str, request: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def raw_request(method: str, path: str, headers: dict[str, bytes], body: bytes = b"") -> bytes:
    """An HTTP/1.1 request with `Connection: close`, header values sent as raw bytes."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    if body or method == "POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def response_header(raw: bytes, name: str) -> str | None:
    """A header of a raw HTTP response, or None."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def abandon_upload(url: str, path: str, declared: int, sent: bytes,
                   headers: dict[str, bytes] | None = None) -> None:
    """Start a POST declaring `declared` bytes, send only `sent`, then close the socket."""
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: test",
             b"Content-Type: application/octet-stream",
             b"Content-Length: " + str(declared).encode()]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + sent)


def read_events_then_disconnect(client: httpx.Client, path: str, payload: dict[str, Any],
                                events: int, headers: dict[str, str]) -> list[bytes]:
    """Read `events` server-sent events from a stream, then drop the connection."""
    received: list[bytes] = []
    with client.stream("POST", path, json=payload, headers=headers) as response:
        assert response.status_code == 200
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            while b"\n\n" in buffer and len(received) < events:
                event, buffer = buffer.split(b"\n\n", 1)
                received.append(event)
            if len(received) >= events:
                break
    return received  # leaving the block closes the connection mid-stream
