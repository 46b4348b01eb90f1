"""Fill a database quickly with stored articles that look like the store path's own.

Why: the scale benches (``store_scale``, ``dedup_scale``, ``listing_scale``,
``reclassify_scale``, ``search_scale``) need 10^4 to 10^6 stored articles, and storing
them one by one through ``store.save_article`` would take hours to days at these sizes.
This module is the one shared way to do it in minutes:

* :class:`BulkWriter` appends rows to tables: ``COPY ... FROM STDIN`` on PostgreSQL
  (row triggers still fire, so ``change_log`` and the search vector are written by the
  database exactly as for a live insert), one ``executemany`` per table and batch on
  SQLite (its FTS5 and change-log triggers fire too); then it moves the sequences past
  the explicit ids and refreshes the planner's statistics, as autovacuum would.
* :class:`Corpus` generates article *i* of a corpus as a pure function of (seed, i) and
  writes, per article, what the real store path leaves behind: the ``entries`` row
  (status ``stored``), the ``articles`` row (canonical URL, source domain, body,
  summary, published date or none, content hash, MinHash, label, score, topics,
  evidence, classifier version), its ``article_bands`` (LSH body bands and dated title
  bands, none for an exact duplicate), and its ``stories`` row with the counters and
  topics the store would have kept; exact duplicates (``duplicate_of_id``) and
  near-duplicates join the story of a recent article, decided by ``dedup.match``.
  :func:`number_changes` then numbers the change log in one statement, as beat's
  ``maintain_change_log`` would have over time.

The text is synthetic but shaped like the real pool (``bench.reclassify_scale.text_pool``:
real titles with their languages; bodies of the real lengths of full articles and of
feed summaries, drawn word by word from each language's real word frequencies), so
every body is distinct, band keys collide only as rarely as they do between unrelated
real articles, and PostgreSQL's ``to_tsvector`` sees real words. Each article carries
the classification of the real item whose title it has (classified once per item).
Articles are spaced ``interval`` apart from ``start`` (1M a year by default), so a day
holds the same number of articles whatever the size, and the dedup window and the
dated title bands meet the same density at 10k as at 1M.

Articles are generated in blocks of :data:`BLOCK`; duplicates are copies of earlier
articles of the same block, so loading 0..N at once or in steps that end on a block
boundary writes the same rows.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from worker import dedup  # noqa: E402
from worker.classify import Classification, classify  # noqa: E402
from worker.feeds import entry_key  # noqa: E402
from worker.models import Article, ArticleBand, Entry, Story  # noqa: E402
from worker.store.sql import table_of  # noqa: E402

BLOCK = 1_000
"""Articles generated (and duplicates looked for) together."""
WRITE_ROWS = 5_000
"""Articles per write transaction."""
RECENT = 200
"""A duplicate copies one of this many articles before it (the same block)."""

Text = tuple[str, str, str]  # (title, body, language)
Pool = tuple[list[Text], list[Text]]  # (full articles, feed items)


# --- writing rows fast -------------------------------------------------------------------


class BulkWriter:
    """Appends rows to tables, the fastest way each database offers.

    Every row of one :meth:`write` call must have the same keys (the columns written);
    a column that the migrated schema lacks must simply not be among them, so a bench
    can load a database at an older revision. Explicit ids are fine:
    :meth:`finish` moves PostgreSQL's sequences past them.
    """

    def __init__(self, url: str) -> None:
        from worker.db import get_engine

        self.engine = get_engine(url)
        self.postgres = self.engine.dialect.name == "postgresql"
        self._written: set[str] = set()

    def write(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` to ``table`` in one transaction."""
        self.write_many([(table, rows)])

    def write_many(self, batches: Iterable[tuple[sa.Table, Sequence[dict[str, Any]]]]) -> None:
        """Append several tables' rows in one transaction, in the order given (parents
        first: foreign keys are checked as on any insert)."""
        with self.engine.begin() as conn:
            for table, rows in batches:
                if not rows:
                    continue
                self._written.add(table.name)
                if self.postgres:
                    _copy_rows(conn, table, rows)
                else:
                    conn.execute(sa.insert(table), list(rows))

    def finish(self, *, analyze: bool = True, vacuum: bool = False) -> None:
        """Move the sequences of the tables written past their largest id and refresh
        the statistics, as autovacuum would have in a live database; ``vacuum`` also
        sets the visibility map, as autovacuum would after a while (index-only scans,
        and a size that a fresh load does not inflate). PostgreSQL only: nothing in a
        SQLite deployment runs ANALYZE, and its plans without statistics are the ones
        to measure (docs/benchmark.md, the listing's indexes)."""
        if self.postgres:
            with self.engine.begin() as conn:
                for name in sorted(self._written):
                    has_id = conn.execute(
                        sa.text(
                            "SELECT 1 FROM information_schema.columns"
                            " WHERE table_name = :t AND column_name = 'id'"
                        ),
                        {"t": name},
                    ).first()
                    sequence = (
                        conn.execute(
                            sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": name}
                        ).scalar()
                        if has_id
                        else None
                    )
                    if sequence:
                        conn.execute(
                            sa.text(
                                f"SELECT setval('{sequence}', "
                                f"(SELECT coalesce(max(id), 0) + 1 FROM {name}), false)"
                            )
                        )
        if not self.postgres or not (analyze or vacuum):
            return
        verb = "VACUUM ANALYZE" if vacuum else "ANALYZE" if analyze else "VACUUM"
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in sorted(self._written):
                conn.execute(sa.text(f"{verb} {name}"))


def _copy_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN`` through psycopg, JSON columns as JSONB."""
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.JSON)]
    raw = conn.connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            values = [row[c] for c in columns]
            for i in json_at:
                values[i] = Jsonb(values[i])
            copy.write_row(values)


def move_sequences(url: str, tables: Iterable[str]) -> None:
    """Move PostgreSQL's id sequences of ``tables`` past their largest id (a no-op on
    SQLite): for seeds that inserted explicit ids some other way."""
    writer = BulkWriter(url)
    writer._written.update(tables)
    writer.finish(analyze=False)


def number_changes(url: str) -> int:
    """Give every unnumbered ``change_log`` row a position, in id order, in one
    statement, and move ``change_log_state`` on; returns how many.

    What beat's ``maintain_change_log`` (``store.sequence_changes``) does in batches of
    a few thousand; a bulk load has no two changes of one row to fold (each article and
    story is written once, with its final values), so numbering in id order is the
    same result, minutes faster at a million rows.
    """
    from worker.db import get_engine

    with get_engine(url).begin() as conn:
        last = int(
            conn.execute(sa.text("SELECT last_position FROM change_log_state WHERE id = 1"))
            .scalar_one()
        )  # fmt: skip
        taken = conn.execute(
            sa.text(
                "UPDATE change_log SET position = numbered.n + :last FROM ("
                " SELECT id, row_number() OVER (ORDER BY id) AS n FROM change_log"
                " WHERE position IS NULL) AS numbered WHERE change_log.id = numbered.id"
            ),
            {"last": last},
        ).rowcount
        conn.execute(
            sa.text("UPDATE change_log_state SET last_position = :p WHERE id = 1"),
            {"p": last + taken},
        )
    return int(taken)


# --- the synthetic corpus ------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusSpec:
    """The shape of a corpus; the defaults are a year of a mid-sized deployment."""

    seed: int = 20
    feeds: int = 500
    full_share: float = 0.8
    """Articles with a full extracted body; the rest are stored from the feed summary."""
    exact_share: float = 0.08
    """Syndicated copies with the same body as a recent article (``duplicate_of_id``)."""
    near_share: float = 0.07
    """Copies of a recent article with a tenth of its words changed."""
    undated_share: float = 0.05
    start: datetime = datetime(2025, 12, 1, tzinfo=UTC)
    interval: timedelta = timedelta(seconds=31.536)  # 1,000,000 a year


@dataclass
class _Made:
    """One generated article before its ids are known."""

    index: int
    feed: int
    url: str
    domain: str
    title: str
    body: str
    summary: str
    language: str
    author: str | None
    published: datetime | None
    created: datetime
    fp: dedup.Fingerprint
    verdict: Classification
    copy_of: int | None = None  # index of the original, for duplicates and near copies
    exact: bool = False
    reason: str | None = None


@dataclass
class LoadReport:
    articles: int = 0
    stories: int = 0
    bands: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    seconds: float = 0.0
    first_id: int = 0
    last_id: int = 0


class TextModel:
    """Titles, languages and classifications of a real pool, and each language's word
    frequencies to draw bodies from."""

    def __init__(self, pool: Pool) -> None:
        full, short = pool
        self.items: list[Text] = [*full, *short]
        self.full_words = [max(len(body.split()), 50) for _, body, _ in full] or [600]
        self.short_words = [max(len(body.split()), 8) for _, body, _ in short] or [40]
        counts: dict[str, dict[str, int]] = {}
        for title, body, language in self.items:
            bucket = counts.setdefault(language or "en", {})
            for word in f"{title} {body}".split():
                bucket[word] = bucket.get(word, 0) + 1
        # A language with too few words of its own to draw distinct bodies from is
        # written with the largest vocabulary (its label and title stay its own).
        largest = max(counts, key=lambda language: len(counts[language]))
        self.vocab: dict[str, tuple[list[str], list[int]]] = {}
        for language, bucket in counts.items():
            if len(bucket) >= 2_000 or language == largest:
                words = sorted(bucket, key=lambda w: (-bucket[w], w))
                self.vocab[language] = (words, list(accumulate(bucket[w] for w in words)))
        self._fallback = self.vocab[largest]
        self._verdicts: dict[int, Classification] = {}

    def words(self, rng: random.Random, language: str, n: int) -> list[str]:
        words, cumulative = self.vocab.get(language) or self._fallback
        return rng.choices(words, cum_weights=cumulative, k=n)

    def body(self, rng: random.Random, language: str, *, full: bool) -> str:
        n = rng.choice(self.full_words if full else self.short_words)
        words = self.words(rng, language, n)
        sentences = [" ".join(words[i : i + 18]) + "." for i in range(0, n, 18)]
        paragraph = 6 if full else len(sentences)
        return "\n".join(
            " ".join(sentences[i : i + paragraph]) for i in range(0, len(sentences), paragraph)
        )

    def verdict(self, item: int) -> Classification:
        """The classifier's verdict on the real item (its real title and body), once."""
        found = self._verdicts.get(item)
        if found is None:
            title, body, language = self.items[item]
            found = self._verdicts[item] = classify(title=title, body=body, language=language)
        return found


def _edit(rng: random.Random, model: TextModel, body: str, language: str) -> str:
    """A near copy: about a tenth of the words replaced, a sentence of its own added."""
    words = body.split(" ")
    for _ in range(max(1, len(words) // 10)):
        words[rng.randrange(len(words))] = model.words(rng, language, 1)[0]
    return " ".join(words) + " " + " ".join(model.words(rng, language, 12)) + "."


class Corpus:
    """Article *i* of a corpus, and the rows storing articles ``start..stop`` leaves."""

    def __init__(self, pool: Pool, spec: CorpusSpec = CorpusSpec()) -> None:
        self.spec = spec
        self.model = TextModel(pool)

    # -- generation: pure in (seed, index) -------------------------------------------------

    def rng(self, index: int, salt: int = 0) -> random.Random:
        return random.Random((self.spec.seed * 1_000_003 + index) * 7 + salt)

    def created_at(self, index: int) -> datetime:
        return self.spec.start + index * self.spec.interval

    def article(self, index: int, recent: dict[int, _Made], salt: int = 0) -> _Made:
        """Article ``index``; ``recent`` holds the earlier articles of its block. Another
        ``salt`` gives another article for the same place in time (benches' probes)."""
        spec = self.spec
        rng = self.rng(index, salt)
        created = self.created_at(index)
        feed = rng.randrange(spec.feeds)
        domain = f"news{feed:04d}.example"
        url = f"https://{domain}/{created:%Y/%m/%d}/story-{index}-{rng.getrandbits(32):08x}"
        roll = rng.random()
        choices = [i for i in recent if i >= index - RECENT]
        original = recent[rng.choice(choices)] if choices else None
        if original is not None and roll < spec.exact_share + spec.near_share:
            exact = roll < spec.exact_share
            if exact:
                body, title = (
                    original.body,
                    (original.title if rng.random() < 0.5 else self._title(rng)[0]),
                )
            else:
                body, title = (
                    _edit(rng, self.model, original.body, original.language),
                    original.title,
                )
            published = (
                None if original.published is None
                else original.published + timedelta(minutes=rng.randrange(5, 240))
            )  # fmt: skip
            fp = dedup.fingerprint(title=title, body=body, published_at=published or created)
            verdict = original.verdict
            copy = _Made(
                index=index, feed=feed, url=url, domain=domain, title=title, body=body,
                summary=original.summary, language=original.language,
                author=original.author, published=published, created=created, fp=fp,
                verdict=verdict, copy_of=original.index, exact=exact,
            )  # fmt: skip
            match = dedup.match(
                fp,
                dedup.Fingerprint(
                    content_hash=original.fp.content_hash,
                    signature=original.fp.signature,
                    title=original.title,
                    published_at=original.published or original.created,
                ),
            )
            if match.same_story:
                copy.reason, copy.exact = match.reason, match.exact
                return copy
            copy.copy_of, copy.exact = None, False
            return copy
        title, item = self._title(rng)
        language = self.model.items[item][2] or "en"
        full = rng.random() < spec.full_share
        body = self.model.body(rng, language, full=full)
        summary = " ".join(body.split(" ")[: rng.randrange(20, 45)])
        published = (
            None if rng.random() < spec.undated_share
            else created - timedelta(minutes=rng.randrange(2, 360))
        )  # fmt: skip
        verdict = self.model.verdict(item)
        return _Made(
            index=index, feed=feed, url=url, domain=domain, title=title, body=body,
            summary=summary, language=language,
            author=None if rng.random() < 0.4 else f"Reporter {rng.randrange(3000)}",
            published=published, created=created,
            fp=dedup.fingerprint(title=title, body=body, published_at=published or created),
            verdict=verdict,
        )  # fmt: skip

    def _title(self, rng: random.Random) -> tuple[str, int]:
        item = rng.randrange(len(self.model.items))
        return self.model.items[item][0] or "Untitled", item

    # -- loading -------------------------------------------------------------------------

    def ensure_feeds(self, url: str) -> list[int]:
        """The corpus's feeds (through ``store.upsert_feed``), created on first use."""
        from worker import store
        from worker.db import session_scope
        from worker.models import Feed

        with session_scope(url) as session:
            have = dict(
                session.execute(sa.select(table_of(Feed).c.name, table_of(Feed).c.id)).all()
            )
            ids = []
            for n in range(self.spec.feeds):
                name = f"corpus-{n:04d}"
                if name not in have:
                    feed, _ = store.upsert_feed(
                        session, name=name, url=f"https://news{n:04d}.example/rss.xml"
                    )
                    session.flush()
                    have[name] = feed.id
                ids.append(int(have[name]))
        return ids

    def load(
        self,
        url: str,
        start: int,
        stop: int,
        *,
        progress: Callable[[int], None] | None = None,
        vacuum: bool = True,
    ) -> LoadReport:
        """Write corpus articles ``start <= i < stop`` (with their entries, stories and
        bands) into the migrated database at ``url``, after what it already holds."""
        t0 = time.monotonic()
        feeds = self.ensure_feeds(url)
        writer = BulkWriter(url)
        with writer.engine.connect() as conn:
            largest = "SELECT coalesce(max(id), 0) FROM {}"
            next_ids = {
                name: int(conn.execute(sa.text(largest.format(name))).scalar_one()) + 1
                for name in ("articles", "stories", "entries")
            }
        report = LoadReport(first_id=next_ids["articles"])
        recent: dict[int, _Made] = {}
        made: list[_Made] = []
        # One write in flight on a thread while the next batch is generated: the
        # database's side of a COPY (search vector, indexes) and this process's side
        # (text, fingerprints) then run on two cores instead of taking turns.
        with ThreadPoolExecutor(max_workers=1) as background:
            pending: Future[None] | None = None
            for index in range(start, stop):
                if index % BLOCK == 0:
                    recent = {}
                article = self.article(index, recent)
                recent[index] = article
                made.append(article)
                # Whole blocks per write: a copy's original is in the same write.
                if index == stop - 1 or ((index + 1) % BLOCK == 0 and len(made) >= WRITE_ROWS):
                    if pending is not None:
                        pending.result()  # in order: ids and foreign keys follow on
                    pending = background.submit(self._write, writer, made, feeds, next_ids, report)
                    made = []
                    if progress is not None:
                        progress(index + 1)
            if pending is not None:
                pending.result()
        writer.finish(vacuum=vacuum)
        report.last_id = next_ids["articles"] - 1
        report.seconds = round(time.monotonic() - t0, 1)
        return report

    def _write(
        self,
        writer: BulkWriter,
        made: list[_Made],
        feeds: list[int],
        next_ids: dict[str, int],
        report: LoadReport,
    ) -> None:
        """Rows for ``made`` (whole blocks: every original is in it or earlier in it)."""
        article_ids: dict[int, int] = {}
        story_of: dict[int, int] = {}
        duplicate_root: dict[int, int] = {}
        stories: dict[int, dict[str, Any]] = {}
        sources: dict[int, set[str]] = {}
        articles: list[dict[str, Any]] = []
        bands: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for m in made:
            article_id = article_ids[m.index] = next_ids["articles"]
            next_ids["articles"] += 1
            original = m.copy_of if m.copy_of in article_ids else None
            duplicate_of = None
            if original is not None:
                story_id = story_of[m.index] = story_of[original]
                story = stories[story_id]
                if m.exact:
                    duplicate_of = duplicate_root.get(original, article_ids[original])
                    duplicate_root[m.index] = duplicate_of
                    report.duplicates += 1
                else:
                    report.near_duplicates += 1
                story["article_count"] += 1
                if m.domain not in sources[story_id]:
                    sources[story_id].add(m.domain)
                    story["source_count"] += 1
                story["last_seen_at"] = m.created
                story["updated_at"] = m.created
                story["is_ukraine_security"] |= m.verdict.is_ukraine_security
                story["security_score"] = max(
                    story["security_score"], round(float(m.verdict.score), 4)
                )
                story["topics"] += [t for t in m.verdict.topics if t not in story["topics"]]
            else:
                story_id = story_of[m.index] = next_ids["stories"]
                next_ids["stories"] += 1
                sources[story_id] = {m.domain}
                stories[story_id] = {
                    "id": story_id, "title": m.title, "first_article_id": article_id,
                    "first_seen_at": m.created, "last_seen_at": m.created, "article_count": 1,
                    "source_count": 1, "is_ukraine_security": m.verdict.is_ukraine_security,
                    "security_score": round(float(m.verdict.score), 4),
                    "topics": list(m.verdict.topics), "created_at": m.created,
                    "updated_at": m.created,
                }  # fmt: skip
            fetched = m.created
            articles.append({
                "id": article_id, "url": m.url, "canonical_url": m.url, "feed_id": feeds[m.feed],
                "guid": m.url, "source_domain": m.domain, "title": m.title,
                "title_history": [], "body": m.body, "summary": m.summary, "author": m.author,
                "published_at": m.published, "fetched_at": fetched, "language": m.language,
                "extraction_method": "trafilatura" if len(m.body) > 600 else "feed_summary",
                "content_hash": m.fp.content_hash,
                "minhash": dedup.encode_signature(m.fp.signature),
                "story_id": story_id, "duplicate_of_id": duplicate_of,
                "dedup_reason": m.reason,
                "is_ukraine_security": m.verdict.is_ukraine_security,
                "security_score": round(float(m.verdict.score), 4),
                "topics": list(m.verdict.topics),
                "evidence": {k: list(v) for k, v in m.verdict.evidence.items()},
                "classifier_version": m.verdict.version, "created_at": m.created,
                "updated_at": m.created,
            })  # fmt: skip
            if duplicate_of is None:
                bands.extend(
                    {"band_key": k, "article_id": article_id}
                    for k in sorted(set(dedup.index_keys(m.fp)))
                )
            entries.append({
                "id": next_ids["entries"], "feed_id": feeds[m.feed],
                "entry_key": entry_key(guid=m.url, url=m.url, title=m.title), "guid": m.url,
                "url": m.url, "title": m.title, "summary": m.summary, "author": m.author,
                "published_at": m.published, "status": "stored", "attempts": 1,
                "article_id": article_id, "first_seen_at": m.created - timedelta(minutes=2),
                "updated_at": m.created,
            })  # fmt: skip
            next_ids["entries"] += 1
        writer.write_many(
            [
                (table_of(Story), list(stories.values())),
                (table_of(Article), articles),
                (table_of(ArticleBand), bands),
                (table_of(Entry), entries),
            ]
        )
        report.articles += len(articles)
        report.stories += len(stories)
        report.bands += len(bands)


def synthetic_pool() -> Pool:
    """Stand-in text of the real pool's shape (long articles, short feed items, two
    languages), for smoke runs and tests that should not spend seconds loading data:
    topical titles, bodies of 5,000 made-up words used about equally often, so bodies
    drawn from them are as distinct as real ones."""
    topical = ["kyiv", "drones", "ceasefire", "talks", "aid", "grain", "port", "energy",
               "sea", "oil", "minister", "border", "troops", "sanctions", "summit", "budget",
               "election", "court", "storm", "market", "football", "vaccine", "rail",
               "bank"]  # fmt: skip
    words = [f"w{n}" for n in range(5_000)]
    rng = random.Random(5)
    full = [(f"Report {i}: {' '.join(rng.sample(topical, 5))}",
             " ".join(rng.choices(words, k=600)), "en") for i in range(40)]  # fmt: skip
    short = [(f"Item {i}: {' '.join(rng.sample(topical, 6))}",
              " ".join(rng.choices(words, k=40)), "en" if i % 5 else "uk")
             for i in range(200)]  # fmt: skip
    return full, short
