"""A real webhook receiver on 127.0.0.1: records every request (headers, body, when it
arrived), answers with a status the test sets, can hold an answer back, and can be
stopped and started again on the same port (connection refused in between)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.services import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    """``time.time()`` when the body had been read."""

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def reference_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, computed here independently of the worker."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verifies(received: Received, secret: str) -> bool:
    h = received.headers
    expected = reference_signature(secret, h["webhook-id"], h["webhook-timestamp"], received.body)
    return any(hmac.compare_digest(expected, s) for s in h["webhook-signature"].split())


class Receiver:
    """``url`` takes POSTs; ``requests`` is every one so far (failed answers included)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[Received] = []
        self.status = 204
        self.delay = 0.0
        """Seconds to hold each answer back (after recording the request)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(headers, body, time.time()))
                    status, delay = receiver.status, receiver.delay
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def distinct(self) -> list[Received]:
        """One request per webhook-id (its first arrival), in order of arrival."""
        with self._lock:
            found = list(self.requests)
        seen: dict[str, Received] = {}
        for received in found:
            seen.setdefault(received.webhook_id, received)
        return list(seen.values())

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
