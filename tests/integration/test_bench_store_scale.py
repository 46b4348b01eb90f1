"""The shared bulk loader (``bench/corpus.py``) writes what the store path would have,
and the short mode of ``bench/store_scale.py`` measures what it says through the real
store path (the figures in docs/scale-store.md come from the same code, larger)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import factories
from worker import dedup, store
from worker.db import get_engine

pytestmark = pytest.mark.integration


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_corpus_rows_are_what_the_store_path_leaves(database_url: str) -> None:
    from bench.corpus import Corpus, CorpusSpec, number_changes, synthetic_pool

    corpus = Corpus(synthetic_pool(), CorpusSpec(feeds=20))
    report = corpus.load(database_url, 0, 600)
    assert (report.articles, report.first_id, report.last_id) == (600, 1, 600)
    assert report.duplicates > 0
    assert report.near_duplicates > 0
    assert _rows(database_url, "SELECT count(*) FROM articles") == [(600,)]
    # Every article has its stored entry, and every story counts its articles.
    assert _rows(
        database_url,
        "SELECT count(*) FROM entries e JOIN articles a ON a.id = e.article_id"
        " WHERE e.status = 'stored' AND e.url = a.canonical_url",
    ) == [(600,)]
    assert _rows(database_url, "SELECT count(*), sum(article_count) FROM stories") == [
        (report.stories, 600)
    ]
    assert _rows(
        database_url,
        "SELECT count(*) FROM stories s WHERE article_count <>"
        " (SELECT count(*) FROM articles a WHERE a.story_id = s.id)",
    ) == [(0,)]
    # Exact duplicates point at an original in their story and are not indexed.
    assert _rows(
        database_url,
        "SELECT count(*) FROM articles d JOIN articles o ON o.id = d.duplicate_of_id"
        " WHERE o.content_hash = d.content_hash AND o.story_id = d.story_id"
        " AND o.duplicate_of_id IS NULL",
    ) == [(report.duplicates,)]
    assert _rows(
        database_url,
        "SELECT count(*) FROM article_bands b JOIN articles a ON a.id = b.article_id"
        " WHERE a.duplicate_of_id IS NOT NULL",
    ) == [(0,)]
    # The band keys are the fingerprint's, as the store would index them.
    for article_id, title, body, published, created in _rows(
        database_url,
        "SELECT id, title, body, published_at, created_at FROM articles"
        " WHERE duplicate_of_id IS NULL ORDER BY id LIMIT 5",
    ):
        when = published or created
        # SQLite hands back text through a raw query.
        when = store.as_utc(datetime.fromisoformat(when) if isinstance(when, str) else when)  # type: ignore[arg-type]
        fp = dedup.fingerprint(title=str(title), body=str(body), published_at=when)
        keys = _rows(
            database_url, f"SELECT band_key FROM article_bands WHERE article_id = {article_id}"
        )
        assert {k for (k,) in keys} == set(dedup.index_keys(fp))
    # The triggers logged every article and story; numbering gives each a position.
    logged = _rows(database_url, "SELECT count(*) FROM change_log WHERE kind <> 'feed'")[0][0]
    assert logged == 600 + report.stories
    number_changes(database_url)
    assert _rows(database_url, "SELECT count(*) FROM change_log WHERE position IS NULL") == [(0,)]

    # The store path carries on from the loaded database: a copy of a loaded body is
    # found as its duplicate, and a new article takes the next id.
    body, original = _rows(
        database_url,
        "SELECT body, id FROM articles WHERE duplicate_of_id IS NULL ORDER BY id DESC LIMIT 1",
    )[0]
    copy = factories.save_article(url="https://copy.example/1", body=str(body))
    assert (copy.action, copy.duplicate_of_id) == ("duplicate", original)
    assert copy.article_id == 601


def test_corpus_loaded_in_steps_is_the_corpus_loaded_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.corpus
    from bench.corpus import Corpus, CorpusSpec, synthetic_pool
    from worker import migrate

    monkeypatch.setattr(bench.corpus, "BLOCK", 100)
    monkeypatch.setattr(bench.corpus, "WRITE_ROWS", 150)
    corpus = Corpus(synthetic_pool(), CorpusSpec(feeds=5))
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("once", "steps")]
    for url in urls:
        migrate.upgrade(url)
    corpus.load(urls[0], 0, 400)
    for start, stop in ((0, 100), (100, 300), (300, 400)):
        corpus.load(urls[1], start, stop)
    query = (
        "SELECT id, canonical_url, content_hash, story_id, duplicate_of_id, dedup_reason,"
        " is_ukraine_security FROM articles ORDER BY id"
    )
    once, steps = (_rows(url, query) for url in urls)
    assert len(once) == 400
    assert once == steps
    assert _rows(urls[0], "SELECT count(*) FROM article_bands") == _rows(
        urls[1], "SELECT count(*) FROM article_bands"
    )


def test_store_scale_short_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.store_scale import main, render

    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    out = tmp_path / "result.json"
    args = ["--sizes", "200", "500", "--probes", "10", "--repeats", "1", "--feeds", "10"]
    args += ["--reclassify-batches", "1", "--reclassify-batch", "20", "--synthetic-text"]
    assert main([*args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [row["articles"] for row in result["sizes"]] == [200, 500]
    for round_no, row in enumerate(result["sizes"]):
        for label in ("grow", "ref"):
            measured = row["store"][label]
            actions = measured["actions"]
            assert sum(actions.values()) == 10
            # One re-fetch of a stored URL in ten takes the update path, the rest insert.
            assert actions.get("updated") == 1
            assert actions.get("duplicate", 0) >= 1
            assert measured["dedup_lookup_ms"]["n"] == 10
            assert measured["wall_ms"]["mean"] > 0
            assert measured["server_cpu_ms"] >= 0
            # Only the update runs the band index's DELETE; new articles insert theirs.
            deletes = measured["statements"].get("bands: delete", {"calls": 0})["calls"]
            assert deletes * 10 == actions["updated"]
            assert measured["statements"]["bands: insert"]["calls"] > 0
            assert row["reclassify_per_s"][label] > 0
        assert row["store"]["ratio"]["wall_mean"] > 0
        for page in row["pages"].values():
            assert page["grow"]["n"] == page["ref"]["n"] == 2
        # The grown database holds the corpus and the articles stored in earlier rounds
        # (nine new ones a round: the tenth re-fetched a stored URL).
        assert row["size"]["articles"] == row["articles"] + 9 * round_no
        assert row["size"]["band_rows"] > 0
        assert row["size"]["bytes_per_article"] > 0
    markdown = render(result)
    assert "| 500 |" in markdown
    assert "lookup: URL, GUID, body, band candidates" in markdown
