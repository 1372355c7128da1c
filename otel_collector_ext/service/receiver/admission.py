"""How many OTLP requests `serve` reads and decodes at once, over both transports.

Decoding is CPU-bound Python: more of it at once than there are cores only adds
memory (each admitted request holds its body and what it decodes to). So a
receiver admits at most `max_requests` requests at a time, decodes them on a pool
of `workers` threads, and answers the rest at once with "retry later" (HTTP 503 +
Retry-After, gRPC UNAVAILABLE + RetryInfo), which the released exporters honour.
Refusing at once, rather than queueing without bound, keeps memory bounded and
tells senders to back off while they still have time to retry.

Sized by measurement (bench/bench_otlp.py, requests of 64 one-row frames, two
shared cores): acknowledged throughput is the same, about 65 requests/s (4,200
records/s), with 1, 8 or 64 clients sending at once, over HTTP and gRPC alike,
because decoding holds the GIL: one request at a time already uses what the
process has. So more than two decoding threads would not help, and 16 admitted
requests absorb a burst (queued at most about 16 x 15 ms) while bounding memory;
a higher bound would only add latency and memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

DEFAULT_MAX_REQUESTS = 16
DEFAULT_WORKERS = 2
RETRY_AFTER_SECONDS = 1.0


class Admission:
    """Admits at most `max_requests` requests at once; decodes on `workers` threads."""

    def __init__(self, max_requests: int = DEFAULT_MAX_REQUESTS,
                 workers: int = DEFAULT_WORKERS) -> None:
        if max_requests < 1 or workers < 1:
            raise ValueError("max_requests and workers must be at least 1")
        self.max_requests = max_requests
        self._slots = threading.BoundedSemaphore(max_requests)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="otlp-decode")
        self._lock = threading.Lock()
        self.refused = 0

    def try_enter(self) -> bool:
        """Take a slot if one is free (never waits); False: answer "retry later"."""
        if self._slots.acquire(blocking=False):
            return True
        with self._lock:
            self.refused += 1
        return False

    def leave(self) -> None:
        self._slots.release()

    def submit(self, work: Callable[..., T], *args: object) -> Future[T]:
        """Run `work` on the decoding pool (RuntimeError once shut down)."""
        return self._pool.submit(work, *args)

    def shutdown(self) -> None:
        """Drop work not started; work under way finishes on its own (nothing waits for it)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
