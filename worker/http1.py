"""The fetcher's HTTP/1.1 client: pinned connections, a deadline on every read, keep-alive.

Why not httpx: the fetcher uses none of what httpx adds over a connection (cookies,
auth, redirects, decoding; it follows redirects and inflates bodies itself), and that
layer was most of a page fetch's client CPU. ``python -m bench.fetch_cpu`` measured
0.55-0.65 ms per page through ``httpx.Client`` against 0.15 ms for the standard
library's parser on the same pages, and 1.5 against 0.7 ms on a thread that shares
the GIL with extraction, as the pool's prefetch thread does.

What this module keeps from the httpx set-up it replaces, each with a test in
``tests/integration/test_fetch_http.py`` or ``test_http1.py``:

* the SSRF guard at connect time (:func:`worker.ssrf.resolve_checked`): the host is
  resolved once, every address is checked and the socket goes to a checked address;
* TLS verified against certifi's roots (``httpx.create_ssl_context()``, as before),
  with the URL's host name for SNI and the certificate check;
* URLs normalised as httpx did (IDNA hosts, percent-encoded paths), through
  ``httpx.URL``;
* up to 20 idle connections kept for 5 s; an idle connection the server has closed is
  noticed before reuse, and a request that finds it closed anyway is sent once more on
  a new connection (GET only, before any byte of an answer);
* a connect timeout, a read timeout per ``recv``, and a deadline that bounds every
  read, the headers' included, so a server that drips its headers cannot hold a
  fetch past its total timeout (httpx checked the deadline only between body reads);
* a body whose connection ends before its declared length is an error, not a short
  page.

Errors come out as :class:`ConnectTimeoutError`, :class:`ReadTimeoutError`,
:class:`DeadlineExceededError` (all :class:`TimeoutError`), :class:`ConnectionFailedError`
(:class:`OSError`) or :class:`~worker.ssrf.BlockedAddressError`;
:mod:`worker.fetch` turns them into the pipeline's typed errors.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httpx

from .ssrf import parse_networks, resolve_checked

MAX_IDLE_CONNECTIONS = 20
IDLE_EXPIRY_SECONDS = 5.0
DISCARD_SECONDS = 1.0
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_SIZE = 64 * 1024
_Origin = tuple[str, str, int]  # scheme, host (IDNA, no brackets), port


class ConnectTimeoutError(TimeoutError):
    """No connection (or TLS handshake) within the connect timeout."""


class ReadTimeoutError(TimeoutError):
    """The server sent nothing for the read timeout."""


class DeadlineExceededError(TimeoutError):
    """The request's total deadline passed while it was still reading."""


class ConnectionFailedError(OSError):
    """The connection failed or the server broke the protocol (message says which)."""


class _SocketReader(io.RawIOBase):
    """Raw reads from a socket, each bounded by the read timeout and the deadline.

    ``http.client`` reads the status line, the headers and the body through this
    (wrapped in a buffer), so no read of any part can outlive the deadline.
    """

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        connection = self._connection
        remaining = connection.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("deadline passed while reading")
        connection.set_timeout(min(connection.read_timeout, remaining))
        try:
            return connection.sock.recv_into(buffer)
        except TimeoutError as exc:
            if connection.deadline - time.monotonic() <= 0:
                raise DeadlineExceededError("deadline passed while reading") from exc
            raise ReadTimeoutError(f"no data for {connection.read_timeout:g}s") from exc


class _ResponseSource:
    """What ``http.client.HTTPResponse`` reads from: our bounded reader, not a makefile."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def makefile(self, _mode: str) -> io.BufferedReader:
        return io.BufferedReader(_SocketReader(self._connection), _READ_SIZE)


@dataclass(eq=False)
class _Connection:
    origin: _Origin
    sock: socket.socket
    read_timeout: float = 20.0
    deadline: float = float("inf")
    idle_since: float = 0.0
    _timeout: float | None = field(default=None, repr=False)

    def set_timeout(self, seconds: float) -> None:
        if seconds != self._timeout:
            self.sock.settimeout(seconds)
            self._timeout = seconds

    def closed_by_peer(self) -> bool:
        """An idle connection that is readable has been closed (or sent junk): drop it."""
        poller = select.poll()  # not select(): a busy process's descriptors pass 1024
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Response:
    """An answer's status and headers; the body is read piece by piece with :meth:`read`.

    Header names are lower-cased; a repeated header's values are joined with ", ".
    Use as a context manager: the connection goes back to the pool only when the
    body was read to its end and the server keeps it open.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        connection: _Connection,
        raw: http.client.HTTPResponse,
    ) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._raw = raw
        self.status = raw.status
        self.headers = _headers(raw.msg.items())
        self._done = False

    def read(self) -> bytes:
        """The next piece of the body as sent (still content-encoded); b"" at its end."""
        if self._done:
            return b""
        try:
            piece = self._raw.read1(_READ_SIZE)
        except (http.client.IncompleteRead, http.client.HTTPException, ValueError) as exc:
            self._abandon()
            raise ConnectionFailedError(f"broken body: {type(exc).__name__}: {exc}") from exc
        except OSError:
            self._abandon()
            raise
        if piece:
            return piece
        self._done = True
        if self._raw.length:  # declared more than the connection delivered
            self._abandon()
            raise ConnectionFailedError(
                f"connection closed {self._raw.length} bytes before the body's end"
            )
        return b""

    def discard(self, max_bytes: int = 64 * 1024) -> None:
        """Read and drop the rest of a small body (a 304's, a redirect's) so that the
        connection can serve the next request; a larger or broken body just ends the
        connection when the response is closed."""
        declared = self._raw.length
        connection = self._connection
        if connection is None or self._raw.will_close:
            return  # the connection ends with this answer anyway
        if declared is not None and declared > max_bytes:
            return
        # A body that is declared but slow to come is not worth more than a moment.
        connection.deadline = min(connection.deadline, time.monotonic() + DISCARD_SECONDS)
        seen = 0
        try:
            while piece := self.read():
                seen += len(piece)
                if seen > max_bytes:
                    self._abandon()
                    return
        except OSError:
            pass  # read() has already given the connection up

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._done and not self._raw.will_close:
            self._pool.release(connection)
        else:
            connection.close()
        self._raw.close()

    def _abandon(self) -> None:
        self._done = True
        self._raw.will_close = True
        self.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in items:
        if not value.isascii():
            # http.client decodes header bytes as Latin-1; most servers that send
            # non-ASCII (a Location with Cyrillic in it) meant UTF-8.
            with contextlib.suppress(UnicodeError):
                value = value.encode("latin-1").decode("utf-8")
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


@dataclass(frozen=True)
class Target:
    """Where a URL's request goes and what its request line names."""

    scheme: str
    host: str  # lower-case, IDNA-encoded, IPv6 without brackets
    port: int
    path: str  # the request target: percent-encoded path and query, no fragment
    credentials: tuple[str, str] | None = None  # user, password from user:password@


# A URL made only of characters that need no encoding (RFC 3986's unreserved and
# reserved ones, and well-formed %XX escapes) is split with urlsplit; anything else
# (non-ASCII, spaces, dot segments) goes through httpx.URL, which normalises it.
_PLAIN_URL = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*\Z")
_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\0]")
_FORBIDDEN_IN_NAME = re.compile(r"[\r\n\0: ]")


def split_url(url: str) -> Target:
    """The request target of ``url``, exactly as httpx would have sent it.

    Why not always ``httpx.URL``: its parser was a fifth of a fetch's client CPU, and
    nearly every article URL is plain ASCII that needs no normalising. The fast path
    is checked against httpx on generated URLs (``tests/unit/test_http1_urls.py``).
    Raises ``httpx.InvalidURL`` for a URL that cannot be requested.
    """
    if _PLAIN_URL.match(url):
        parts = urlsplit(url)
        if "/." not in parts.path and parts.scheme in _DEFAULT_PORTS and parts.hostname:
            try:
                port = parts.port
            except ValueError as exc:
                raise httpx.InvalidURL(f"bad port: {exc}") from exc
            path = parts.path or "/"
            if "?" in url.partition("#")[0]:
                path = f"{path}?{parts.query}"
            credentials = None
            if parts.username is not None:
                credentials = (unquote(parts.username), unquote(parts.password or ""))
            default_port = _DEFAULT_PORTS[parts.scheme]
            return Target(parts.scheme, parts.hostname, port or default_port, path, credentials)
    parsed = httpx.URL(url)
    if parsed.scheme not in _DEFAULT_PORTS:
        raise httpx.InvalidURL(f"scheme {parsed.scheme!r} is not http(s)")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise httpx.InvalidURL("no host")
    default_port = _DEFAULT_PORTS[parsed.scheme]
    credentials = (parsed.username, parsed.password) if parsed.username else None
    return Target(
        parsed.scheme,
        host,
        parsed.port or default_port,
        parsed.raw_path.decode("ascii"),
        credentials,
    )


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections, opened only to addresses the SSRF guard passed.

    Thread-safe: the pool child's prefetch thread and its main thread share one.
    """

    def __init__(
        self,
        *,
        allowed_networks: Iterable[str] = (),
        resolver: Callable[[str, int], list[str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_idle: int = MAX_IDLE_CONNECTIONS,
        idle_expiry: float = IDLE_EXPIRY_SECONDS,
    ) -> None:
        self._allowed = parse_networks(allowed_networks)
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._default_headers = dict(default_headers or {})
        self._max_idle = max_idle
        self._idle_expiry = idle_expiry
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def get(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        deadline: float,
    ) -> Response:
        """Send a GET and read the answer's head; the caller reads the body.

        Raises ``httpx.InvalidURL`` for a URL httpx would not send, the timeouts and
        :class:`ConnectionFailedError` above, and ``BlockedAddressError``.
        """
        origin, request = self._request_bytes(url, headers)
        reused = self._take_idle(origin)
        if reused is not None:
            try:
                return self._exchange(reused, request, read_timeout, deadline)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # Closed between our check and the request: a GET may be sent again.
                pass
        connection = self._connect(origin, connect_timeout=connect_timeout, deadline=deadline)
        return self._exchange(connection, request, read_timeout, deadline)

    def release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        connection.deadline = float("inf")
        with self._lock:
            self._idle.append(connection)
            evicted = self._idle[: -self._max_idle] if len(self._idle) > self._max_idle else []
            del self._idle[: len(evicted)]
        for old in evicted:
            old.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        now = time.monotonic()
        stale: list[_Connection] = []
        found: _Connection | None = None
        with self._lock:
            keep: list[_Connection] = []
            for connection in self._idle:
                if now - connection.idle_since > self._idle_expiry:
                    stale.append(connection)
                elif found is None and connection.origin == origin:
                    found = connection
                else:
                    keep.append(connection)
            self._idle = keep
        for connection in stale:
            connection.close()
        if found is not None and found.closed_by_peer():
            found.close()
            return None
        return found

    def _request_bytes(self, url: str, headers: Mapping[str, str]) -> tuple[_Origin, bytes]:
        target = split_url(url)
        default_port = _DEFAULT_PORTS[target.scheme]
        host_header = f"[{target.host}]" if ":" in target.host else target.host
        if target.port != default_port:
            host_header = f"{host_header}:{target.port}"
        lines = [f"GET {target.path} HTTP/1.1", f"Host: {host_header}"]
        fields = {**self._default_headers, **headers}
        if target.credentials is not None:  # user:password@ in the URL, as httpx sent it
            token = base64.b64encode(":".join(target.credentials).encode()).decode("ascii")
            fields["Authorization"] = f"Basic {token}"
        for name, value in fields.items():
            if _FORBIDDEN_IN_HEADER.search(value) or _FORBIDDEN_IN_NAME.search(name):
                raise httpx.InvalidURL(f"header {name!r} has a character HTTP forbids")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")
        return (target.scheme, target.host, target.port), request

    def _connect(self, origin: _Origin, *, connect_timeout: float, deadline: float) -> _Connection:
        scheme, host, port = origin
        timeout = max(0.001, min(connect_timeout, deadline - time.monotonic()))
        addresses = resolve_checked(host, port, self._allowed, resolver=self._resolver)
        error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, port), timeout=timeout)
            except TimeoutError as exc:
                error = ConnectTimeoutError(f"connect to {address}:{port} timed out")
                error.__cause__ = exc
                continue
            except OSError as exc:
                error = ConnectionFailedError(f"connect to {address}:{port} failed: {exc}")
                error.__cause__ = exc
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if scheme == "https":
                    sock = self._tls(sock, host)
            except BaseException:
                sock.close()
                raise
            return _Connection(origin, sock)
        raise error or ConnectionFailedError(f"{host} has no address")

    def _tls(self, sock: socket.socket, host: str) -> socket.socket:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        try:
            return self._ssl_context.wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            raise ConnectTimeoutError(f"TLS handshake with {host} timed out") from exc
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise ConnectionFailedError(f"TLS with {host} failed: {exc}") from exc

    def _exchange(
        self, connection: _Connection, request: bytes, read_timeout: float, deadline: float
    ) -> Response:
        connection.read_timeout = read_timeout
        connection.deadline = deadline
        raw = http.client.HTTPResponse(_ResponseSource(connection), method="GET")  # type: ignore[arg-type]
        try:
            connection.set_timeout(max(0.001, min(read_timeout, deadline - time.monotonic())))
            try:
                connection.sock.sendall(request)
            except TimeoutError as exc:
                raise ReadTimeoutError("the request could not be sent in time") from exc
            raw.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # Before the HTTPException branch: RemoteDisconnected is one too, and get()
            # must see it as it is to send the request once more.
            connection.close()
            raise
        except http.client.HTTPException as exc:
            connection.close()
            raise ConnectionFailedError(f"bad answer: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        return Response(self, connection, raw)
