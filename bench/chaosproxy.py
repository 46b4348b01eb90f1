"""A small TCP proxy that can slow down or cut the connections it carries.

The chaos soak (``bench/soak.py``) points the workers at PostgreSQL through this
proxy, so it can inject the network faults a real deployment meets between a
worker and its database without root, ``tc`` or toxiproxy:

- :meth:`ChaosProxy.delay` adds latency to every chunk forwarded in either
  direction for a while (a congested or distant link);
- :meth:`ChaosProxy.reset` cuts every open connection with a TCP RST and
  refuses new ones for a moment (a failover, a NAT table flush, a firewall
  restart).

It is a plain threaded proxy (two pump threads per connection), good for the
few dozen connections a soak opens, not for production traffic.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    closed: bool = False


@dataclass
class ChaosProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` until :meth:`stop`."""

    upstream_port: int
    upstream_host: str = "127.0.0.1"
    port: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._delay_until = 0.0
        self._delay_s = 0.0
        self._refuse_until = 0.0
        self._halt = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    # --- control ---------------------------------------------------------------

    def start(self) -> ChaosProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._listener.close()
        self.reset(refuse_seconds=0.0)

    def delay(self, seconds_per_chunk: float, *, for_seconds: float) -> None:
        """Hold every forwarded chunk ``seconds_per_chunk`` for the next ``for_seconds``."""
        with self._lock:
            self._delay_s = seconds_per_chunk
            self._delay_until = time.monotonic() + for_seconds
            self._count("delay")

    def reset(self, *, refuse_seconds: float = 1.0) -> int:
        """RST every open connection, refuse new ones for ``refuse_seconds``; how many cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._refuse_until = time.monotonic() + refuse_seconds
            if refuse_seconds:
                self._count("reset")
        for pair in pairs:
            _abort(pair)
        return len(pairs)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # --- forwarding ------------------------------------------------------------

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _accept_loop(self) -> None:
        while not self._halt.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _rst(client)
                continue
            try:
                upstream = socket.create_connection((self.upstream_host, self.upstream_port), 5)
            except OSError:
                _rst(client)  # the database is down: the client sees what it would see
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _current_delay(self) -> float:
        return self._delay_s if time.monotonic() < self._delay_until else 0.0

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                pause = self._current_delay()
                if pause:
                    time.sleep(pause)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)
            _abort(pair, graceful=True)


_LINGER_RST = struct.pack("ii", 1, 0)


def _rst(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


def _abort(pair: _Pair, *, graceful: bool = False) -> None:
    if pair.closed:
        return
    pair.closed = True
    for sock in (pair.client, pair.upstream):
        if graceful:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        else:
            _rst(sock)
