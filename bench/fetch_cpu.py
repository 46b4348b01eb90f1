"""Client CPU of one page fetch: the fetcher against the httpx client it replaced.

Why: in the pool, each page is fetched on the prefetch thread while the main thread
extracts the previous one (``pipeline.PagePrefetcher``). Until 2026-12-05 the fetcher
sent its requests through ``httpx.Client``; ``bench/run.py --stage-cpu`` put that
thread's CPU at about 1.15 ms per page, twice what the same fetch cost alone. The
fetcher now speaks HTTP/1.1 through :mod:`worker.http1`. This bench measures both,
in one run, on the local news web's pages (``bench/newsweb.py``, served from another
process so its CPU is not counted):

* ``fetcher``: ``Fetcher.get``, the whole of it (SSRF check, headers, body cap,
  decoding), over :mod:`worker.http1`;
* ``httpx``: the same GETs through an ``httpx.Client`` set up as the fetcher's was
  (pinned transport, no redirects, its timeouts), reading the raw body; this is the
  transport's cost without the fetcher's own checks, so it flatters httpx;

each alone (the process's only busy thread) and ``with a GIL rival``: on a second
thread while the main thread runs pure-Python work, as extraction does. Every socket
read releases the GIL and must win it back from the busy thread, and each hand-over
costs CPU on both sides, so fewer and cheaper reads count twice there.

    python -m bench.fetch_cpu                   # 800 fetches per mode, two rounds
    python -m bench.fetch_cpu --fetches 40 --rounds 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import NewsWeb, article_path, load_pages  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _serve(data_dir: Path, articles: int, queue: Any) -> None:
    pages = load_pages(data_dir)
    web = NewsWeb(pages)
    web.article_limit = articles
    web.start()
    queue.put((web.base_url, [article_path(pages, a) for a in range(articles)]))
    threading.Event().wait()  # until the parent terminates this process


def _fetcher_get() -> tuple[Callable[[str], object], Callable[[], None]]:
    from worker.fetch import HTML_CONTENT_TYPES, Fetcher, FetchPolicy

    fetcher = Fetcher(FetchPolicy(user_agent="bench", allowed_networks=("127.0.0.0/8",)))
    return lambda url: fetcher.get(url, expect=HTML_CONTENT_TYPES), fetcher.close


def _httpx_get() -> tuple[Callable[[str], object], Callable[[], None]]:
    import httpx

    from worker.fetch import ACCEPT_ENCODING, HTML_ACCEPT
    from worker.ssrf import PinnedBackend, PinnedTransport

    client = httpx.Client(
        follow_redirects=False,
        timeout=httpx.Timeout(connect=10.0, read=20.0, write=20.0, pool=10.0),
        headers={"User-Agent": "bench", "Accept-Encoding": ACCEPT_ENCODING},
        trust_env=False,
        transport=PinnedTransport(PinnedBackend(("127.0.0.0/8",))),
    )

    def get(url: str) -> bytes:
        with client.stream("GET", url, headers={"Accept": HTML_ACCEPT}) as response:
            return b"".join(response.iter_raw())

    return get, client.close


CLIENTS = {"fetcher": _fetcher_get, "httpx": _httpx_get}


def _fetch_cpu_ms(urls: list[str], *, client: str, rival: bool) -> float:
    """CPU per fetch (ms) of the thread that fetched ``urls``."""
    get, close = CLIENTS[client]()
    spent: list[float] = []

    def fetch_all() -> None:
        started = time.thread_time()
        for url in urls:
            get(url)
        spent.append(time.thread_time() - started)

    try:
        fetch_all()  # warm: connection open, code paths loaded
        spent.clear()
        if rival:
            thread = threading.Thread(target=fetch_all)
            thread.start()
            while thread.is_alive():
                sum(i * i for i in range(20_000))  # the GIL-holding extraction's stand-in
            thread.join()
        else:
            fetch_all()
    finally:
        close()
    return spent[0] * 1000 / len(urls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    args = parser.parse_args(argv)

    queue: Any = multiprocessing.get_context("fork").Queue()
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(args.data_dir, args.fetches, queue), daemon=True
    )
    server.start()
    try:
        base, paths = queue.get(timeout=120)
        urls = [base + path for path in paths]
        modes = [
            (f"{client}, {'with a GIL rival' if rival else 'alone'}", client, rival)
            for rival in (False, True)
            for client in CLIENTS
        ]
        results: dict[str, list[float]] = {name: [] for name, _c, _r in modes}
        for _ in range(args.rounds):
            for name, client, rival in modes:
                results[name].append(_fetch_cpu_ms(urls, client=client, rival=rival))
    finally:
        server.terminate()
    print(f"{args.fetches} fetches per mode, {args.rounds} round(s); client CPU ms per fetch:")
    for name, values in results.items():
        print(f"  {name:<28} " + " / ".join(f"{v:.3f}" for v in values))
    for rival in ("alone", "with a GIL rival"):
        ratios = [
            f / h
            for f, h in zip(results[f"fetcher, {rival}"], results[f"httpx, {rival}"], strict=True)
        ]
        print(f"  fetcher / httpx, {rival:<17} " + " / ".join(f"{r:.2f}" for r in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
