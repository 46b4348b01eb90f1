"""Extraction: the seed page golden values, real pages' quality, and bad input."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.extract import extract_article, from_feed_summary, html_to_text

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def _seed_html() -> str:
    return (SEEDS / "seed-article.html").read_text().replace("{{BASE_URL}}", "http://127.0.0.1:1")


def test_seed_page_golden() -> None:
    article = extract_article(_seed_html(), url="http://127.0.0.1:1/seed-article.html")
    assert article is not None
    seed_lines = (SEEDS / "seed-article.txt").read_text().strip().splitlines()
    assert article.title == seed_lines[0].strip()
    assert article.body.startswith("French President Emmanuel Macron described")
    assert "Some countries are ready, some countries are not" in article.body
    assert "Subscribe to our newsletter" not in article.body
    assert article.author == "Vafa Guliyeva"
    assert article.published_at is not None
    assert article.published_at.date() == datetime(2025, 2, 25, tzinfo=UTC).date()
    assert article.language == "en"
    assert article.canonical_url == "http://127.0.0.1:1/news/macron-trump-security-guarantees.html"
    assert article.method == "trafilatura"


@pytest.mark.parametrize(
    "html",
    ["", "   ", "<html></html>", "<<<>>>", "\x00\x01binary", "<div>" * 5000, "<p>short</p>"],
)
def test_broken_html_returns_none_or_text(html: str) -> None:
    article = extract_article(html, url="https://example.org/x")
    assert article is None or isinstance(article.body, str)


def test_feed_summary_fallback_strips_html() -> None:
    article = from_feed_summary(
        title="Kyiv talks",
        summary="<p>Talks on a <b>ceasefire</b> &amp; guarantees</p>",
        published_at=None,
    )
    assert article is not None
    assert article.body == "Talks on a ceasefire & guarantees"
    assert article.method == "feed_summary"
    assert from_feed_summary(title=None, summary=None, published_at=None) is None
    assert from_feed_summary(title="Only a title", summary="<p> </p>", published_at=None) is None


def test_html_to_text_keeps_lines() -> None:
    assert html_to_text("a<br>\n<b>b</b>  c") == "a\nb c"


def _shingles(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}


def test_extraction_quality_on_real_pages(shared_data: Path) -> None:
    """Mean shingle F1 on 40 article-extraction-benchmark pages stays near trafilatura's 0.96."""
    base = shared_data / "article-extraction-benchmark"
    truth = json.loads((base / "ground-truth.json").read_text())
    scores = []
    for page_id in sorted(truth)[:40]:
        html = gzip.decompress((base / "html" / f"{page_id}.html.gz").read_bytes())
        article = extract_article(html.decode("utf-8", "replace"), url=truth[page_id]["url"])
        expected = _shingles(truth[page_id]["articleBody"])
        got = _shingles(article.body) if article else set()
        tp = len(expected & got)
        precision = tp / len(got) if got else 0.0
        recall = tp / len(expected) if expected else 0.0
        scores.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    mean_f1 = sum(scores) / len(scores)
    assert mean_f1 >= 0.90, mean_f1
