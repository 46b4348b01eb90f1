"""Is trafilatura's fallback worth its CPU? Default extraction vs ``fast=True``.

    .venv/bin/python bench/extraction_modes.py     # ~2 min on 2 cores

``trafilatura.bare_extraction`` compares its own result with readability and
jusText when it looks doubtful; ``fast=True`` skips that. Over every fundus and
article-extraction-benchmark page (the benchmark's pages, with ground truth),
this prints CPU per page and the 4-word-shingle F1 against the ground truth
for ``worker.extract.extract_article`` in both modes, the same run, plus how
many pages each mode gets badly wrong (F1 < 0.5).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import trafilatura  # noqa: E402

from worker import extract  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def _f1(expected: str, got: str) -> float:
    e, g = _shingles(expected), _shingles(got)
    tp = len(e & g)
    if not tp:
        return 0.0
    precision, recall = tp / len(g), tp / len(e)
    return 2 * precision * recall / (precision + recall)


def load() -> list[tuple[str, str, str, str]]:
    """(html, url, ground-truth body, source) for every page with ground truth."""
    pages = []
    aeb = SHARED_DATA / "article-extraction-benchmark"
    truth = json.loads((aeb / "ground-truth.json").read_text())
    for key in sorted(truth):
        html = gzip.decompress((aeb / "html" / f"{key}.html.gz").read_bytes())
        pages.append(
            (html.decode("utf-8", "replace"), truth[key]["url"], truth[key]["articleBody"], "aeb")
        )
    fundus = SHARED_DATA / "fundus"
    truth = json.loads((fundus / "fundus_ground_truth.json").read_text())
    for key in sorted(truth):
        html = gzip.decompress((fundus / truth[key]["html"]).read_bytes())
        url = f"https://example.org/{key}"
        pages.append((html.decode("utf-8", "replace"), url, truth[key]["articleBody"], "fundus"))
    return pages


def measure(pages: list[tuple[str, str, str, str]], *, fast: bool) -> dict[str, Any]:
    original = trafilatura.bare_extraction
    extract.trafilatura.bare_extraction = functools.partial(original, fast=fast)  # type: ignore[attr-defined]
    try:
        for html, url, _, _ in pages[:10]:  # warm-up: language model, lazy imports
            extract.extract_article(html, url=url)
        scores: dict[str, list[float]] = {}
        started = time.process_time()
        for html, url, expected, source in pages:
            article = extract.extract_article(html, url=url)
            scores.setdefault(source, []).append(_f1(expected, article.body if article else ""))
        cpu = time.process_time() - started
    finally:
        extract.trafilatura.bare_extraction = original  # type: ignore[attr-defined]
    every = [s for values in scores.values() for s in values]
    return {
        "cpu_ms_per_page": round(cpu / len(pages) * 1000, 1),
        "mean_f1": {k: round(sum(v) / len(v), 3) for k, v in scores.items()},
        "pages_f1_below_0_5": sum(1 for s in every if s < 0.5),
        "pages": len(every),
    }


def main() -> int:
    if not SHARED_DATA.is_dir():
        print(f"error: {SHARED_DATA} is absent", file=sys.stderr)
        return 2
    pages = load()
    for fast in (False, True):
        print("fast=True " if fast else "default   ", json.dumps(measure(pages, fast=fast)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
