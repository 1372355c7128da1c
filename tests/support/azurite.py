"""Azurite, the official Azure Storage emulator, as pytest fixtures.

Use in a test module with ``from tests.support.azurite import azurite  # noqa: F401``.
Azurite comes from the npm registry (``package.json``); when it is missing the
tests fail and say to run ``npm ci`` - they never skip silently.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's fixed, publicly documented development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """One azurite-blob process on a loopback port with its own data folder.

    `stop()` and `start()` keep the port and the data, so a test can simulate an
    outage of the same account.
    """

    ACCOUNT = ACCOUNT
    ACCOUNT_KEY = ACCOUNT_KEY

    def __init__(self, data_dir: Path, port: int | None = None, *,
                 tls: tuple[Path, Path] | None = None, oauth: bool = False) -> None:
        if not AZURITE_BIN.exists():
            pytest.fail(
                f"Azurite is not installed ({AZURITE_BIN} is missing): run `npm ci` in {ROOT}",
                pytrace=False,
            )
        self.data_dir = data_dir
        self.port = port or free_port()
        self.tls = tls  # (certificate, key) in PEM: serve HTTPS
        self.oauth = oauth  # accept bearer tokens (Azurite's "basic" check: no signature)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "azurite.log"

    @property
    def account_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until it answers HTTP requests."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                "--location", str(self.data_dir), "--skipApiVersionCheck", "--loose", "--silent"]
        if self.tls:
            args += ["--cert", str(self.tls[0]), "--key", str(self.tls[1])]
        if self.oauth:
            args += ["--oauth", "basic"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            args,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.data_dir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            time.sleep(0.05)  # poll interval; the loop waits for the port to answer
            if self.proc.poll() is not None:
                pytest.fail(f"azurite-blob exited with {self.proc.returncode}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"azurite-blob did not answer within {timeout}s:\n{self._log_tail()}")

    def _answers(self) -> bool:
        if self.tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=0.5, context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
        try:
            conn.request("GET", f"/{ACCOUNT}?comp=list")
            conn.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the process gracefully (it saves its metadata); the data folder stays."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        closed_before = self._log_text().count("successfully closed")
        proc.terminate()
        # Azurite saves and closes on SIGTERM but its node process may linger afterwards.
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            if self._log_text().count("successfully closed") > closed_before:
                break
            time.sleep(0.02)  # poll interval while waiting for the message above
        proc.kill()
        proc.wait(10)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        return self._log_text()[-2000:] or "(no log)"

    def service(self):  # noqa: ANN201 - azure type kept out of the signature
        """A plain SDK client, for tests that check what really is in storage."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, retry_total=0)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite for the session; tests use their own containers (`container_name`)."""
    data = Path(tempfile.mkdtemp(prefix="azurite-"))
    server = Azurite(data)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def azurite_factory(tmp_path: Path) -> Iterator[Callable[..., Azurite]]:
    """Private Azurite instances (for outage tests), stopped after the test."""
    started: list[Azurite] = []

    def make(port: int | None = None, **kw: object) -> Azurite:
        server = Azurite(tmp_path / f"azurite-{len(started)}", port, **kw)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def container_name() -> str:
    """A container name no other test uses."""
    return f"t{uuid.uuid4().hex[:16]}"


def poll(condition, timeout: float = 20.0, message: str = "condition"):  # noqa: ANN001, ANN201
    """Poll `condition()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(delay)  # poll interval, not synchronisation: the loop checks the condition
        delay = min(delay * 2, 0.1)


@pytest.fixture
def wait_for():  # noqa: ANN201
    """`wait_for(condition, timeout, message)`: poll until truthy, fail at the deadline."""
    return poll


__all__ = ["ACCOUNT", "ACCOUNT_KEY", "Azurite", "azurite", "azurite_factory", "container_name",
           "free_port", "poll", "wait_for"]
