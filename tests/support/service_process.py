"""Runs `python -m otel_collector_ext serve` as a child process for the end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, python_env
from tests.support.helpers_otlp import free_port, http_get


class ServeProcess:
    """The collector service in its own process, on free loopback ports."""

    def __init__(self, workdir: Path, destination: Path | str, *,
                 receiver: dict[str, Any] | None = None, batch: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, exporter: dict[str, Any] | None = None,
                 wal: dict[str, Any] | None = None, shutdown_timeout: str | None = None) -> None:
        self.grpc = ("127.0.0.1", free_port())
        self.http = ("127.0.0.1", free_port())
        self.health = ("127.0.0.1", free_port())
        otlp: dict[str, Any] = {"protocols": {
            "grpc": {"endpoint": f"127.0.0.1:{self.grpc[1]}"},
            "http": {"endpoint": f"127.0.0.1:{self.http[1]}"}}}
        for key, value in (receiver or {}).items():
            if key == "protocols":  # merged: the endpoints stay the free ports above
                for protocol, settings in value.items():
                    otlp["protocols"][protocol].update(settings)
            else:
                otlp[key] = value
        config = {
            "receivers": {"otlp": otlp},
            "processors": {"batch": batch or {"timeout": "100ms"}},
            "exporters": {"avro": {"destination": str(destination), **(exporter or {})}},
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{self.health[1]}"}},
            "service": {"extensions": ["health_check"], "pipelines": {"logs": {
                "receivers": ["otlp"], "processors": ["batch"], "exporters": ["avro"]}}},
        }
        if wal is not None:
            config["service"]["wal"] = wal
        if shutdown_timeout is not None:
            config["service"]["shutdown_timeout"] = shutdown_timeout
        self.config_path = workdir / "collector.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "serve.log"
        self._env = python_env(**(env or {}))
        self._spawn()

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_collector_ext", "serve", "--config",
             str(self.config_path)],
            cwd=ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)

    def restart(self) -> None:
        """Start the service again, same configuration and ports (after it exited)."""
        assert self.process.poll() is not None, "still running"
        self._spawn()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            try:
                status, _ = http_get(self.health, "/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)  # polling a condition, with a deadline
        raise AssertionError(f"serve not ready in {timeout}s:\n{self.log()}")

    def health_detail(self) -> dict[str, Any]:
        return json.loads(http_get(self.health, "/")[1])

    def sigterm(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.sigterm()
        return self.wait()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class PeakRss:
    """The highest resident set size of a process while the block runs, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

