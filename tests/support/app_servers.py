"""The example apps under the servers users run them with, each in a child process.

`run_app` starts `flask run`, gunicorn or uvicorn on a loopback address with a
configuration file in `$OTEL_COLLECTOR_EXT_CONFIG`, and waits (polling /health with a
deadline) until it serves. uvicorn and gunicorn get a socket the test bound first
(`--fd`, `fd://`), so there is no free-port race; `flask run` binds port 0 and the
port is read from its log. The server's output goes to a file, read on failure.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, python_env
from tests.support.middleware_servers import wait_until

BIN = Path(sys.executable).parent
EXAMPLE_APPS = {"wsgi": "examples.flask_app:app", "asgi": "examples.fastapi_app:app"}
# server name → (command, the kind of app it serves); "{fd}" is the listening socket.
SERVERS: dict[str, tuple[list[str], str]] = {
    "flask-run": ([str(BIN / "flask"), "--app", "examples.flask_app", "run",
                   "--host", "127.0.0.1", "--port", "0"], "wsgi"),
    "gunicorn-sync": ([sys.executable, "-m", "gunicorn", "--bind", "fd://{fd}",
                       "--workers", "2", "--worker-class", "sync",
                       EXAMPLE_APPS["wsgi"]], "wsgi"),
    "gunicorn-gthread": ([sys.executable, "-m", "gunicorn", "--bind", "fd://{fd}",
                          "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                          EXAMPLE_APPS["wsgi"]], "wsgi"),
    "uvicorn": ([sys.executable, "-m", "uvicorn", "--fd", "{fd}", "--log-level", "warning",
                 EXAMPLE_APPS["asgi"]], "asgi"),
}
_FLASK_URL = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


class AppServer:
    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.url = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged_url(self) -> str:
        """The address `flask run` says it listens on ("" until it says so)."""
        found = _FLASK_URL.search(self.log())
        return found.group(1) if found else ""

    def sigterm_and_wait(self, timeout: float = 60) -> int:
        """SIGTERM, as Kubernetes sends to the container's first process; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not stop in {timeout}s:\n{self.log()}") from None


class ServerExited(AssertionError):
    pass


def wait_for(check: Any, timeout: float, what: str, server: AppServer, *,
             exit_fails: bool = True) -> Any:
    """Poll `check()` until truthy; fails early, with the log, if the server exits."""
    def check_alive() -> Any:
        result = check()
        if not result and exit_fails and server.process.poll() is not None:
            raise ServerExited(f"the server exited ({server.process.returncode}) "
                               f"before {what}:\n{server.log()}")
        return result

    try:
        return wait_until(check_alive, timeout, what)
    except ServerExited:
        raise
    except AssertionError as e:  # timed out
        raise AssertionError(f"{e}\n{server.log()}") from None


def start_app(server: str, config: dict[str, Any], workdir: Path) -> tuple[AppServer, socket.socket | None]:
    """Start `server` (a key of SERVERS) without waiting; the caller closes the socket."""
    command, _ = SERVERS[server]
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    sock = None
    pass_fds: tuple[int, ...] = ()
    if any("{fd}" in part for part in command):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
        pass_fds = (sock.fileno(),)
        command = [part.replace("{fd}", str(sock.fileno())) for part in command]
    log_path = workdir / f"{server}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds,
            env=python_env(OTEL_COLLECTOR_EXT_CONFIG=str(config_path), PYTHONUNBUFFERED="1"))
    app = AppServer(process, log_path)
    if sock is not None:
        host, port = sock.getsockname()
        app.url = f"http://{host}:{port}"
    return app, sock


@contextmanager
def run_app(server: str, config: dict[str, Any], workdir: Path) -> Iterator[AppServer]:
    """`server` serving its example app with `config`, ready; killed if left running."""
    app, sock = start_app(server, config, workdir)
    try:
        if sock is not None:
            sock.close()  # the child holds its own copy
        else:
            app.url = wait_for(app.logged_url, 60, "flask to say where it listens", app)
        wait_for(lambda: httpx.get(app.url + "/health", timeout=5).status_code == 200,
                 60, "the server to answer /health", app)
        yield app
    finally:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait()
