"""The fetcher's HTTP/1.1 client on the wire: raw sockets on 127.0.0.1 that answer
byte by byte as each test scripts, and a TLS server with a certificate made here."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.errors import PermanentError, TransientError
from worker.fetch import HTML_CONTENT_TYPES, Fetcher, FetchPolicy
from worker.http1 import ConnectionPool

pytestmark = pytest.mark.integration

Script = Callable[[socket.socket, int], None]


def policy(**overrides: float) -> FetchPolicy:
    values: dict[str, object] = {
        "user_agent": "ukraine-security-ingest/test",
        "connect_timeout": 2.0,
        "read_timeout": 1.0,
        "total_timeout": 3.0,
        "allowed_networks": ("127.0.0.1/32",),
    }
    values.update(overrides)
    return FetchPolicy(**values)  # type: ignore[arg-type]


def read_request(sock: socket.socket) -> bytes:
    """One request's head, or b"" when the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            return b""
        data += piece
    return data


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: text/html", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """Accepts connections and runs ``script(sock, connection_number)`` on each; given
    bytes instead of a script, answers every request on every connection with them."""

    def __init__(self, script: Script | bytes) -> None:
        self.script = script if callable(script) else self._answer_with(script)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "page") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            number = self.connections
            threading.Thread(target=self._run, args=(sock, number), daemon=True).start()

    def _run(self, sock: socket.socket, number: int) -> None:
        with sock, contextlib.suppress(OSError):
            self.script(sock, number)

    def _answer_with(self, response: bytes) -> Script:
        def answer(sock: socket.socket, _n: int) -> None:
            while self.next_request(sock):
                sock.sendall(response)

        return answer

    def next_request(self, sock: socket.socket) -> bool:
        request = read_request(sock)
        if request:
            self.requests.append(request)
        return bool(request)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


Serve = Callable[[Script | bytes], RawServer]


@pytest.fixture
def serve() -> Iterator[Callable[[Script | bytes], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script | bytes) -> RawServer:
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_keep_alive_reuses_one_connection(serve: Serve) -> None:
    """Three pages from one host: one TCP connection, three requests on it."""

    server = serve(ok(b"<p>page</p>"))
    with Fetcher(policy()) as fetcher:
        bodies = [fetcher.get(server.url(f"p{i}")).body for i in range(3)]
    assert bodies == [b"<p>page</p>"] * 3
    assert server.connections == 1
    assert [r.split(b" ")[1] for r in server.requests] == [b"/p0", b"/p1", b"/p2"]


def test_a_304_and_a_redirect_leave_the_connection_for_the_next_request(
    serve: Serve,
) -> None:
    """Conditional polls are mostly answered 304, and redirects are followed by hand: both
    keep the connection (with a bounded drain of a redirect's small body)."""

    def answers(sock: socket.socket, _n: int) -> None:
        while server.next_request(sock):
            path = server.requests[-1].split(b" ")[1]
            if path == b"/feed":
                sock.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n')
            elif path == b"/old":
                note = b"<p>moved</p>"
                sock.sendall(
                    b"HTTP/1.1 302 Found\r\nLocation: /new\r\n"
                    + f"Content-Length: {len(note)}\r\n\r\n".encode()
                    + note
                )
            else:
                sock.sendall(ok(b"<p>new</p>"))

    server = serve(answers)
    with Fetcher(policy()) as fetcher:
        assert fetcher.get(server.url("feed"), etag='"v1"').not_modified
        assert fetcher.get(server.url("old")).body == b"<p>new</p>"
    assert server.connections == 1
    assert [r.split(b" ")[1] for r in server.requests] == [b"/feed", b"/old", b"/new"]


def test_a_large_error_body_is_not_read_to_keep_the_connection(
    serve: Serve,
) -> None:
    """A 404 with a megabyte of body: the fetch ends at once and the connection goes."""

    def big_404(sock: socket.socket, _n: int) -> None:
        while server.next_request(sock):
            path = server.requests[-1].split(b" ")[1]
            if path == b"/missing":
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 1048576\r\n\r\n")
                sock.sendall(b"x" * 1024)  # and never the rest
            else:
                sock.sendall(ok(b"<p>here</p>"))

    server = serve(big_404)
    started = time.monotonic()
    with Fetcher(policy()) as fetcher:
        with pytest.raises(PermanentError):
            fetcher.get(server.url("missing"))
        assert time.monotonic() - started < 0.5  # not waiting for the megabyte
        assert fetcher.get(server.url("here")).body == b"<p>here</p>"
    assert server.connections == 2


@pytest.mark.parametrize("framing", ["length", "close"])
def test_a_redirect_whose_body_never_comes_is_followed_at_once(serve: Serve, framing: str) -> None:
    """A 302 that declares a small body and never sends it, or has no length (its body
    ends when the connection does) and keeps the connection open: the redirect is
    followed without waiting for either."""

    def stalling(sock: socket.socket, _n: int) -> None:
        while server.next_request(sock):
            path = server.requests[-1].split(b" ")[1]
            if path == b"/old":
                length = b"Content-Length: 100\r\n" if framing == "length" else b""
                sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: /new\r\n" + length + b"\r\n")
                time.sleep(3)
                return
            sock.sendall(ok(b"<p>new</p>"))

    server = serve(stalling)
    started = time.monotonic()
    with Fetcher(policy(read_timeout=2.0, total_timeout=5.0)) as fetcher:
        assert fetcher.get(server.url("old")).body == b"<p>new</p>"
    assert time.monotonic() - started < 1.8


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Serve,
) -> None:
    """The server answers once per connection and hangs up without saying so (no
    ``Connection: close``): the next fetch notices and opens a new connection."""

    def one_answer(sock: socket.socket, _n: int) -> None:
        if server.next_request(sock):
            sock.sendall(ok(b"<p>once</p>"))

    server = serve(one_answer)
    with Fetcher(policy()) as fetcher:
        first = fetcher.get(server.url("a"))
        time.sleep(0.1)  # the server's close has arrived
        second = fetcher.get(server.url("b"))
    assert first.body == second.body == b"<p>once</p>"
    assert server.connections == 2


def test_a_request_that_meets_a_closing_connection_is_sent_again(
    serve: Serve,
) -> None:
    """The connection looks alive when taken from the pool but the server closes it on
    reading the request, without an answer: the GET goes again on a new connection."""

    def close_on_second(sock: socket.socket, number: int) -> None:
        answered = 0
        while server.next_request(sock):
            if number == 1 and answered == 1:
                return  # read the second request, then hang up without a byte
            sock.sendall(ok(b"<p>ok</p>"))
            answered += 1

    server = serve(close_on_second)
    with Fetcher(policy()) as fetcher:
        assert fetcher.get(server.url("a")).body == b"<p>ok</p>"
        assert fetcher.get(server.url("b")).body == b"<p>ok</p>"
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b", b"/b"]


def test_connection_close_is_not_reused(serve: Serve) -> None:
    def closing(sock: socket.socket, _n: int) -> None:
        if server.next_request(sock):
            sock.sendall(ok(b"<p>x</p>", "Connection: close"))

    server = serve(closing)
    with Fetcher(policy()) as fetcher:
        for path in ("a", "b"):
            assert fetcher.get(server.url(path)).body == b"<p>x</p>"
    assert server.connections == 2


def test_headers_dripped_byte_by_byte_end_at_the_total_timeout(
    serve: Serve,
) -> None:
    """A byte of the header block every 50 ms never trips the read timeout; the
    deadline bounds every read, the headers' too, so the fetch ends on time."""
    stop = threading.Event()

    def drip_headers(sock: socket.socket, _n: int) -> None:
        server.next_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.05):
            sock.sendall(b"X")

    server = serve(drip_headers)
    started = time.monotonic()
    try:
        fetcher = Fetcher(policy(read_timeout=1.0, total_timeout=1.0))
        with fetcher, pytest.raises(TransientError) as info:
            fetcher.get(server.url())
    finally:
        stop.set()
    assert info.value.error_class == "timeout"
    assert "total timeout" in str(info.value)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_cut_short_is_an_error_not_a_short_page(serve: Serve, chunked: bool) -> None:
    def cut(sock: socket.socket, _n: int) -> None:
        server.next_request(sock)
        if chunked:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"400\r\n" + b"a" * 100
            )
        else:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n"
                + b"a" * 500
            )

    server = serve(cut)
    with Fetcher(policy()) as fetcher, pytest.raises(TransientError) as info:
        fetcher.get(server.url())
    assert info.value.error_class == "network"


def test_chunked_body_with_trailers_reads_whole(serve: Serve) -> None:
    server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n<p>ab\r\n6\r\ncd</p>\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    with Fetcher(policy()) as fetcher:
        assert fetcher.get(server.url("a")).body == b"<p>abcd</p>"
        assert fetcher.get(server.url("b")).body == b"<p>abcd</p>"
    assert server.connections == 1


def test_garbage_instead_of_a_status_line_is_a_network_error(
    serve: Serve,
) -> None:
    def garbage(sock: socket.socket, _n: int) -> None:
        server.next_request(sock)
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    server = serve(garbage)
    with Fetcher(policy()) as fetcher, pytest.raises(TransientError) as info:
        fetcher.get(server.url())
    assert info.value.error_class == "network"
    assert "BadStatusLine" in str(info.value)


def test_non_ascii_path_goes_percent_encoded_and_utf8_location_is_followed(
    serve: Serve,
) -> None:
    """A Cyrillic path is sent percent-encoded (as httpx did); a redirect whose
    Location carries raw UTF-8 is read as UTF-8, not Latin-1."""

    def cyrillic(sock: socket.socket, _n: int) -> None:
        while server.next_request(sock):
            path = server.requests[-1].split(b" ")[1]
            if path.startswith(b"/%D0%BD"):
                location = "/статья".encode()
                sock.sendall(b"HTTP/1.1 301 Moved\r\nLocation: " + location + b"\r\n")
                sock.sendall(b"Content-Length: 0\r\n\r\n")
            else:
                sock.sendall(ok(b"<p>moved here</p>"))

    server = serve(cyrillic)
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(server.url("новини?q=мир"))
    assert result.body == b"<p>moved here</p>"
    sent = [r.split(b" ")[1] for r in server.requests]
    assert sent == [
        b"/%D0%BD%D0%BE%D0%B2%D0%B8%D0%BD%D0%B8?q=%D0%BC%D0%B8%D1%80",
        b"/%D1%81%D1%82%D0%B0%D1%82%D1%8C%D1%8F",
    ]
    assert result.redirects == [(301, server.url("статья"))]


def test_request_head_and_repeated_headers(serve: Serve) -> None:
    server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Accept\r\n"
        b"Vary: Cookie\r\nContent-Length: 2\r\n\r\nok"
    )
    with Fetcher(policy()) as fetcher:
        result = fetcher.get(server.url(), etag='"v1"', expect=HTML_CONTENT_TYPES)
    assert result.headers["vary"] == "Accept, Cookie"
    head = server.requests[0].decode("latin-1").split("\r\n")
    assert head[0] == "GET /page HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in head
    assert "User-Agent: ukraine-security-ingest/test" in head
    assert "Accept-Encoding: gzip, deflate" in head
    assert 'If-None-Match: "v1"' in head


def test_credentials_in_the_url_go_as_basic_auth(serve: Serve) -> None:
    """A feed added as https://user:password@host/feed worked through httpx; it still does."""

    server = serve(ok(b"ok"))
    with Fetcher(policy()) as fetcher:
        fetcher.get(f"http://reader:p%40ss@127.0.0.1:{server.port}/feed")
    head = server.requests[0].decode("latin-1").split("\r\n")
    assert "Authorization: Basic cmVhZGVyOnBAc3M=" in head  # base64("reader:p@ss")
    assert head[0] == "GET /feed HTTP/1.1"


def test_a_header_value_with_a_line_break_is_never_sent(
    serve: Serve,
) -> None:
    """An ETag is somebody else's text: one with CR/LF would inject a header."""
    server = serve(lambda sock, _n: None)
    with Fetcher(policy()) as fetcher, pytest.raises(TransientError):
        fetcher.get(server.url(), etag='"v1"\r\nX-Injected: 1')
    assert server.requests == []


def test_a_refused_connection_is_a_network_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with Fetcher(policy()) as fetcher, pytest.raises(TransientError) as info:
        fetcher.get(f"http://127.0.0.1:{port}/")
    assert info.value.error_class == "network"


def test_the_pool_keeps_at_most_its_idle_limit(serve: Serve) -> None:
    servers = [serve(ok(b"x")) for _ in range(3)]
    pool = ConnectionPool(allowed_networks=("127.0.0.1/32",), max_idle=2)
    try:
        for server in servers:
            with pool.get(
                server.url(), {}, connect_timeout=1, read_timeout=1, deadline=time.monotonic() + 5
            ) as response:
                while response.read():
                    pass
        assert len(pool._idle) == 2
        assert [c.origin[2] for c in pool._idle] == [s.port for s in servers[1:]]
    finally:
        pool.close()
    assert pool._idle == []


def test_an_idle_connection_past_its_expiry_is_not_reused(
    serve: Serve,
) -> None:
    server = serve(ok(b"x"))
    pool = ConnectionPool(allowed_networks=("127.0.0.1/32",), idle_expiry=0.05)
    try:
        for pause in (0.0, 0.0, 0.2):
            time.sleep(pause)
            with pool.get(
                server.url(), {}, connect_timeout=1, read_timeout=1, deadline=time.monotonic() + 5
            ) as response:
                assert response.read() == b"x"
                assert response.read() == b""
    finally:
        pool.close()
    assert server.connections == 2  # the first two requests shared one


# TLS: a certificate for "localhost" made with openssl for this module.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, list[str]]]:
    cert, key = certificate
    server_names: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b"<p>over TLS</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name or "") and None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server_names
    server.shutdown()
    server.server_close()


def resolve_localhost(host: str, _port: int) -> list[str]:
    assert host == "localhost"
    return ["127.0.0.1"]


def test_https_verifies_the_certificate_for_the_url_host(
    certificate: tuple[Path, Path], tls_server: tuple[int, list[str]]
) -> None:
    port, server_names = tls_server
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with Fetcher(policy(), resolver=resolve_localhost, ssl_context=trusting) as fetcher:
        result = fetcher.get(f"https://localhost:{port}/a")
        again = fetcher.get(f"https://localhost:{port}/b")
    assert result.body == again.body == b"<p>over TLS</p>"
    assert server_names == ["localhost"]  # SNI names the URL's host; one handshake


def test_https_with_an_untrusted_certificate_fails_clearly(
    tls_server: tuple[int, list[str]],
) -> None:
    port, _ = tls_server
    fetcher = Fetcher(policy(), resolver=resolve_localhost)
    with fetcher, pytest.raises(TransientError) as info:
        fetcher.get(f"https://localhost:{port}/a")
    assert info.value.error_class == "network"
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_https_to_a_name_the_certificate_does_not_cover_fails(
    certificate: tuple[Path, Path], tls_server: tuple[int, list[str]]
) -> None:
    port, _ = tls_server
    trusting = ssl.create_default_context(cafile=str(certificate[0]))

    def resolve_other(_host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    fetcher = Fetcher(policy(), resolver=resolve_other, ssl_context=trusting)
    with fetcher, pytest.raises((TransientError, PermanentError)) as info:
        fetcher.get(f"https://news.example:{port}/a")
    assert "TLS" in str(info.value)
