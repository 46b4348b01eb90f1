"""Client CPU of one page fetch, alone and on a thread that shares the GIL with extraction.

Why: in the pool, each page is fetched on the prefetch thread while the main thread
extracts the previous one (``pipeline.PagePrefetcher``). ``bench/run.py --stage-cpu``
puts that thread's CPU at about 1.1 ms per page, twice what the same fetch costs
alone. This bench shows where the difference comes from, on the local news web's
pages (``bench/newsweb.py``, served from another process so its CPU is not counted):

* ``alone``: ``Fetcher.get`` on this process's only busy thread;
* ``with a GIL rival``: the same fetches on a second thread while the main thread
  runs pure-Python work, as extraction does. Every socket read releases the GIL and
  must win it back from the busy thread (a forced switch after up to
  ``sys.getswitchinterval()``), and each hand-over costs CPU on both sides;
* ``with a GIL rival, 1 MiB reads``: httpcore reads 64 KiB per ``recv``; fewer,
  larger reads mean fewer hand-overs (measured, not shipped: it means changing a
  class constant of httpcore's).

    python -m bench.fetch_cpu                   # 800 fetches per mode, two rounds
    python -m bench.fetch_cpu --fetches 40 --rounds 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
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


def _fetch_cpu_ms(urls: list[str], *, read_bytes: int | None, rival: bool) -> float:
    """CPU per fetch (ms) of the thread that fetched ``urls``."""
    import httpcore._sync.http11 as http11

    from worker.fetch import HTML_CONTENT_TYPES, Fetcher, FetchPolicy

    default = http11.HTTP11Connection.READ_NUM_BYTES
    http11.HTTP11Connection.READ_NUM_BYTES = read_bytes or default
    fetcher = Fetcher(FetchPolicy(user_agent="bench", allowed_networks=("127.0.0.0/8",)))
    spent: list[float] = []

    def fetch_all() -> None:
        started = time.thread_time()
        for url in urls:
            fetcher.get(url, expect=HTML_CONTENT_TYPES)
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
        http11.HTTP11Connection.READ_NUM_BYTES = default
        fetcher.close()
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
        modes = (
            ("alone", None, False),
            ("with a GIL rival", None, True),
            ("with a GIL rival, 1 MiB reads", 1 << 20, True),
        )
        results: dict[str, list[float]] = {name: [] for name, _r, _v in modes}
        for _ in range(args.rounds):
            for name, read_bytes, rival in modes:
                results[name].append(_fetch_cpu_ms(urls, read_bytes=read_bytes, rival=rival))
    finally:
        server.terminate()
    print(f"{args.fetches} fetches per mode, {args.rounds} round(s); client CPU ms per fetch:")
    for name, values in results.items():
        print(f"  {name:<32} " + " / ".join(f"{v:.3f}" for v in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
