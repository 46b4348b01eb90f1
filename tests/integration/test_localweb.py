"""The local web server behind ``ingest demo`` stays quiet when a client hangs up."""

from __future__ import annotations

import socket
import struct
import time
import urllib.request

import pytest

from worker.localweb import LocalWeb


def test_a_reset_connection_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    web = LocalWeb()
    web.add_page("feed.xml", "<rss/>")
    web.start()
    try:
        host, port = web.server.server_address[:2]
        for _ in range(3):  # connect, then reset (SO_LINGER 0) before sending a request
            sock = socket.create_connection((str(host), int(port)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        time.sleep(0.3)  # the handler threads see the reset
        with urllib.request.urlopen(web.url("feed.xml"), timeout=5) as response:
            assert response.read() == b"<rss/>"  # and the server still serves
    finally:
        web.stop()
    assert "Traceback" not in capsys.readouterr().err
