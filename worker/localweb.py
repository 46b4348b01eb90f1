"""A tiny threaded HTTP server on 127.0.0.1 that serves a folder of pages.

Used by ``ingest demo`` (to serve the seed feed without the internet) and by
the integration tests and benchmark as a stand-in for the news web. Files
ending in ``.gz`` are served decompressed under their name without ``.gz``,
and the text ``{{BASE_URL}}`` in any served file is replaced with the server's
own address, so a feed can link to pages on the same server.
"""

from __future__ import annotations

import gzip
import mimetypes
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

Route = Callable[[BaseHTTPRequestHandler], None]

CONTENT_TYPES = {
    ".xml": "application/rss+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
}


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a client hangs up.

    Why: an HTTP client closing an idle keep-alive connection (or resetting it at exit) is
    normal, but ``socketserver`` prints every such ``ConnectionResetError`` as a traceback,
    which made ``ingest demo`` output look like a failure. Other errors still print.
    """

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LocalWeb:
    """Serve ``root`` (and optional in-memory pages) until :meth:`stop`."""

    def __init__(self, root: Path | None = None, *, port: int = 0) -> None:
        self.root = root
        self.pages: dict[str, tuple[bytes, str]] = {}
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY, as real web servers set it: http.server writes the
            # headers and the body separately, and with Nagle's algorithm the
            # body then waits for the client's delayed ACK, ~40 ms per response.
            disable_nagle_algorithm = True

            def log_message(self, *_args: Any) -> None:
                return

            def do_GET(self) -> None:
                import time

                path = unquote(urlsplit(self.path).path)
                with web._lock:
                    web.requests.append((path, time.monotonic()))
                route = web.routes.get(path)
                if route is not None:
                    route(self)
                    return
                found = web.lookup(path)
                if found is None:
                    self._send(404, b"not found", "text/plain")
                    return
                body, content_type = found
                self._send(200, body, content_type)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def add_page(self, path: str, body: bytes | str, content_type: str | None = None) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        ctype = content_type or CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")
        self.pages["/" + path.lstrip("/")] = (data, ctype)
        return self.url(path)

    def lookup(self, path: str) -> tuple[bytes, str] | None:
        if path in self.pages:
            body, ctype = self.pages[path]
            return self._substitute(body), ctype
        if self.root is None:
            return None
        candidate = (self.root / path.lstrip("/")).resolve()
        if self.root.resolve() not in candidate.parents:
            return None
        gz = candidate.with_name(candidate.name + ".gz")
        if candidate.is_file():
            body = candidate.read_bytes()
        elif gz.is_file():
            body = gzip.decompress(gz.read_bytes())
        else:
            return None
        ctype = CONTENT_TYPES.get(candidate.suffix) or (
            mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
        )
        return self._substitute(body), ctype

    def _substitute(self, body: bytes) -> bytes:
        return body.replace(b"{{BASE_URL}}", self.base_url.encode("ascii"))

    def start(self) -> LocalWeb:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalWeb:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
