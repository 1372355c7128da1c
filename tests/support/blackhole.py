"""A loopback TCP proxy that can turn into a black hole: connections are accepted and
requests read, but nothing is ever answered (what a dead route or a hung server looks
like to a client). Used in front of Azurite."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class BlackHoleProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port` until `black_hole()`; from
    then on, until `restore()`, nothing is answered, on new connections and open ones
    alike. `restore()` closes the connections that lived through the hole (as a client
    would see them reset) and forwards again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._generation = 0  # connections of an older generation are closed
        self._holing = threading.Event()
        self._restored = threading.Event()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self.accepted_in_hole = 0
        self._thread = threading.Thread(target=self._accept, name="blackhole-accept", daemon=True)

    def start(self) -> BlackHoleProxy:
        self._thread.start()
        return self

    def black_hole(self) -> None:
        with self._lock:
            self._restored.clear()
            self._holing.set()

    def restore(self) -> None:
        with self._lock:
            self._generation += 1
            self._holing.clear()
            self._restored.set()

    def close(self) -> None:
        self._closed = True
        self.restore()
        self._server.close()
        with self._lock:
            for s in self._sockets:
                _close(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                generation = self._generation
                holing = self._holing.is_set()
                self._sockets.append(client)
            if holing:
                self.accepted_in_hole += 1
                upstream = None
            else:
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
                except OSError:
                    _close(client)
                    continue
                with self._lock:
                    self._sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream, generation),
                             name="blackhole-pump", daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket | None, generation: int) -> None:
        try:
            while not self._closed:
                if self._holing.is_set() or upstream is None:
                    # Hold everything; a connection born in the hole is never forwarded.
                    self._restored.wait(0.2)
                    if self._generation != generation:
                        return
                    continue
                if self._generation != generation:
                    return
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                if self._holing.is_set():
                    continue  # what arrived waits: nothing gets through the hole
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (upstream if src is client else client).sendall(data)
        except OSError:
            return
        finally:
            _close(client)
            if upstream is not None:
                _close(upstream)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.close()


__all__ = ["BlackHoleProxy"]
