"""Client CPU of one store lookup's dedup work: keys, then the candidates' verdicts.

Why: the store runs this for every new article under the dedup lock, so its cost is
paid by the pool process and delays the other writers. Times, per article of the
local news web's pages (``bench/newsweb.py``):

* ``query_keys`` and ``index_keys`` (the lookup's 74 keys and the 38 it stores);
* the candidates' verdicts two ways in the same run: ``match`` on each decoded
  candidate (how the store did it until 2026-12-05, the baseline) and
  ``best_match`` on the stored signatures as they come from the database.

    python -m bench.dedup_cpu                 # 35 candidates per article, 5 rounds
    python -m bench.dedup_cpu --candidates 50
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.newsweb import Page, load_pages  # noqa: E402
from worker import dedup  # noqa: E402
from worker.decoding import decode_body  # noqa: E402
from worker.extract import extract_article  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
WINDOW = timedelta(days=3)


def _best_by_match(
    new: dedup.Fingerprint, candidates: list[dedup.StoredFingerprint]
) -> tuple[int, dedup.Match] | None:
    """The store's loop before ``best_match``: decode each candidate, ``match`` it."""
    best: tuple[int, dedup.Match] | None = None
    for index, candidate in enumerate(candidates):
        stored = dedup.Fingerprint(
            content_hash=candidate.content_hash or "",
            signature=dedup.decode_signature(candidate.minhash) if candidate.minhash else (),
            title=candidate.title,
            published_at=candidate.published_at,
        )
        verdict = dedup.match(new, stored, window=WINDOW)
        if verdict.same_story and (
            best is None or verdict.body_similarity > best[1].body_similarity
        ):
            best = (index, verdict)
    return best


def _body(page: Page) -> str:
    """The body the store would get: the page extracted, or its feed summary."""
    text, _ = decode_body(page.html, header_charset=None)
    extracted = extract_article(text, url="http://127.0.0.1/" + page.key)
    return extracted.body if extracted is not None else page.summary


def _ms_per_article(run: Callable[[], object], articles: int, rounds: int) -> float:
    """Median over rounds of the time per article."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        times.append((time.process_time() - start) / articles * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=35, help="per lookup (store caps at 50)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=0, help="only the first N pages (0: all)")
    args = parser.parse_args(argv)

    rng = random.Random(1)
    pages = load_pages(SHARED_DATA)[: args.pages or None]
    start = datetime(2026, 12, 1)
    fps = [
        dedup.fingerprint(
            title=page.title,
            body=_body(page),
            published_at=start + timedelta(hours=rng.random() * 72),
        )
        for page in pages
    ]
    stored = [
        dedup.StoredFingerprint(
            fp.content_hash, dedup.encode_signature(fp.signature), fp.title, fp.published_at
        )
        for fp in fps
    ]
    pools = [rng.sample(stored, min(args.candidates, len(stored))) for _ in fps]
    n = len(fps)
    # Same choices both ways, or the comparison means nothing.
    assert [_best_by_match(f, c) for f, c in zip(fps, pools, strict=True)] == [
        dedup.best_match(f, c, window=WINDOW) for f, c in zip(fps, pools, strict=True)
    ]

    def keys() -> None:
        dedup._title_band_digests.cache_clear()  # a new headline each time, the worst case
        for fp in fps:
            dedup.query_keys(fp, window=WINDOW)
            dedup.index_keys(fp)

    by_match = _ms_per_article(
        lambda: [_best_by_match(f, c) for f, c in zip(fps, pools, strict=True)],
        n,
        args.rounds,
    )
    by_array = _ms_per_article(
        lambda: [dedup.best_match(f, c, window=WINDOW) for f, c in zip(fps, pools, strict=True)],
        n,
        args.rounds,
    )
    key_ms = _ms_per_article(keys, n, args.rounds)
    print(f"{n} articles, {args.candidates} candidates each, median of {args.rounds} rounds (CPU)")
    print(f"  query_keys + index_keys            {key_ms:.3f} ms per article")
    print(f"  verdicts, match on each (baseline) {by_match:.3f} ms per article")
    print(f"  verdicts, best_match               {by_array:.3f} ms per article")
    print(f"  ratio baseline / best_match        {by_match / by_array:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
