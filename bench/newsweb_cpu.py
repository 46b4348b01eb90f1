"""CPU the local news web spends per page it serves: what ``bench/run.py`` pays for it.

Why: the end-to-end phase of ``bench/run.py`` serves every feed and page from the
bench's own process (``bench/newsweb.py``, http.server threads), on the cores the
deployment runs on, and a real deployment does not carry that work: its
publishers' servers do. Whether a cheaper server would be worth writing depends on
what a request costs and where: this serves the pages from a child process and
fetches them over two keep-alive connections from this one, and reports the
child's CPU (user + system, from ``/proc``) per request. ``py-spy record -p <the
child>`` on a long run shows where it goes.

    python -m bench.newsweb_cpu                   # 3,000 requests
    python -m bench.newsweb_cpu --requests 100
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fetch_cpu import _serve  # noqa: E402
from bench.run import SHARED_DATA, _cpu_s  # noqa: E402

ARTICLES = 1000
"""Articles served: more than the distinct pages, so copies (a partner note spliced
into the page, as in the end-to-end phase) are served as well."""


def run(requests: int, data_dir: Path = SHARED_DATA) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    server = ctx.Process(target=_serve, args=(data_dir, ARTICLES, queue), daemon=True)
    server.start()
    try:
        base_url, paths = queue.get(timeout=120)
        assert server.pid is not None
        address = urlsplit(base_url)
        connections = [
            http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port)
            for _ in range(2)
        ]

        def get(i: int) -> int:
            conn = connections[i % 2]
            conn.request("GET", paths[i % len(paths)])
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{paths[i % len(paths)]}: HTTP {response.status}")
            return len(body)

        for i in range(50):  # warm up: connections open, handler threads started
            get(i)
        cpu_before, started = _cpu_s(server.pid), time.perf_counter()
        served = sum(get(i) for i in range(requests))
        elapsed, cpu = time.perf_counter() - started, _cpu_s(server.pid) - cpu_before
    finally:
        server.kill()
        server.join()
    return {
        "requests": requests,
        "kb_per_page": round(served / requests / 1024, 1),
        "server_cpu_ms_per_request": round(cpu / requests * 1000, 3),
        "wall_ms_per_request": round(elapsed / requests * 1000, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.requests), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
