"""Storage on SQLite and PostgreSQL: idempotent upserts, identity rules, stories, leases."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from tests.integration.helpers import counted_selects, counted_statements
from tests.support import factories
from tests.support.factories import BODY, add_entries, add_feed, article_record, feed_item
from worker import dedup, store
from worker.classify import Classification
from worker.db import session_scope
from worker.feeds import FeedItem, ParsedFeed
from worker.fetch import FetchResult
from worker.models import Article, ArticleBand, Entry, Feed, FeedPoll, Story, utcnow
from worker.settings import Settings
from worker.store.sql import TextArray, text_array_literal

pytestmark = pytest.mark.integration

SEED_BODY = (Path(__file__).parents[2] / "seeds" / "seed-article.txt").read_text()


def _count(model: type) -> int:
    with session_scope() as session:
        return len(session.exec(select(model)).all())


def test_saving_twice_updates_instead_of_inserting(database_url: str) -> None:
    first = factories.save_article()
    second = factories.save_article(title="Kyiv repels drones (updated)")
    assert first.action == "created"
    assert second.action == "updated"
    assert second.article_id == first.article_id
    assert _count(Article) == 1
    assert _count(Story) == 1
    with session_scope() as session:
        article = session.get(Article, first.article_id)
        assert article is not None
        assert article.title == "Kyiv repels drones (updated)"
        assert [h["title"] for h in article.title_history] == [
            "Kyiv repels drone attack as leaders discuss guarantees"
        ]
        assert article.is_ukraine_security


def test_same_guid_in_feed_is_same_article_even_if_url_changed(database_url: str) -> None:
    feed_id = add_feed()
    first = factories.save_article(guid="g-1", feed_id=feed_id)
    second = factories.save_article(
        url="https://news.example/a-new-slug", guid="g-1", feed_id=feed_id
    )
    assert second.article_id == first.article_id
    assert _count(Article) == 1


def test_same_body_elsewhere_is_linked_duplicate_in_same_story(database_url: str) -> None:
    original = factories.save_article()
    copy = factories.save_article(url="https://other.example/wire/123", title="Drones over Kyiv")
    assert copy.action == "duplicate"
    assert copy.duplicate_of_id == original.article_id
    assert copy.story_id == original.story_id
    with session_scope() as session:
        story = session.get(Story, original.story_id)
        assert story is not None
        assert story.article_count == 2
        assert story.source_count == 2
        assert story.is_ukraine_security


def test_an_article_looks_up_its_url_guid_body_and_near_copies_in_one_statement(
    database_url: str,
) -> None:
    """Before its insert, an article reads once: for the article it would update (same
    URL, or same feed and GUID), for an exact copy (same body) and for its near-duplicate
    candidates (the band index). An exact copy, a new body and a near copy each cost one
    SELECT, and the same statement still finds the article to update by its GUID."""
    feed_id = add_feed()
    original = factories.save_article(guid="g-1", feed_id=feed_id)
    with counted_selects() as selects:
        copy = factories.save_article(url="https://other.example/wire/9", title="Wire copy")
    assert (copy.action, copy.duplicate_of_id) == ("duplicate", original.article_id)
    assert len(selects) == 1, selects
    with counted_selects() as selects:
        new = factories.save_article(url="https://other.example/x", title="Other", body=SEED_BODY)
    assert new.action == "created"
    assert len(selects) == 1, selects
    with counted_selects() as selects:
        near = factories.save_article(
            url="https://partner.example/y",
            title="Other",
            body=SEED_BODY + "\n\nThis report was shared by our partner agency.",
        )
    assert (near.action, near.story_id) == ("near_duplicate", new.story_id)
    assert len(selects) == 1, selects
    moved = factories.save_article(url="https://news.example/moved", guid="g-1", feed_id=feed_id)
    assert (moved.action, moved.article_id) == ("updated", original.article_id)  # by its GUID


def test_unrelated_article_starts_new_story(database_url: str) -> None:
    other_body = (
        "The city council approved a new budget for public libraries on Monday, adding "
        "opening hours and a programme of children's reading clubs across all districts. "
    ) * 6
    a = factories.save_article()
    b = factories.save_article(
        url="https://city.example/libraries", title="Libraries", body=other_body
    )
    assert a.story_id != b.story_id
    assert _count(Story) == 2


def _story_fields(story_id: int) -> dict[str, object]:
    with session_scope() as session:
        story = session.get(Story, story_id)
        assert story is not None
        fields = story.model_dump(exclude={"updated_at", "title"})
        fields["first_seen_at"] = store.as_utc(story.first_seen_at)
        fields["last_seen_at"] = store.as_utc(story.last_seen_at)
        return fields


def _save_copies_checking_a_full_recount(
    copies: list[tuple[str, str, Classification | None]],
) -> dict[str, object]:
    """Save each copy (url, body, verdict; None: classified as the pipeline does); after
    each, the story's incrementally kept fields must equal a full ``refresh_story``.
    Returns the story's fields after the last copy."""
    story_id = 0
    incremental: dict[str, object] = {}
    for url, body, verdict in copies:
        saved = factories.save_article(url=url, body=body, classification=verdict)
        story_id = story_id or saved.story_id
        assert saved.story_id == story_id
        incremental = _story_fields(story_id)
        with session_scope() as session:
            store.refresh_story(session, story_id)
        assert _story_fields(story_id) == incremental
    return incremental


def test_story_counters_kept_incrementally_match_a_full_recount(database_url: str) -> None:
    """Copies joining a story update its counters in O(1); a full refresh agrees."""
    story = _save_copies_checking_a_full_recount(
        [
            ("https://wire.example/a", BODY, None),
            ("https://one.example/a", BODY, None),  # exact copy, new source
            ("https://one.example/b", BODY.replace("Tuesday", "Wednesday"), None),  # same source
            ("https://two.example/a", BODY + " Sport results follow.", None),  # near copy
        ]
    )
    assert story["article_count"] == 4
    assert story["source_count"] == 3


def _verdict(positive: bool, score: float, topics: tuple[str, ...]) -> Classification:
    return Classification(
        is_ukraine_security=positive, score=score, topics=topics, evidence={}, version="test"
    )


def test_story_join_merges_topics_label_and_score_as_a_full_recount_does(
    database_url: str,
) -> None:
    """Copies with different verdicts: the story keeps the union of topics in first-seen
    order, the best score and "positive if any copy is"; a full refresh agrees."""
    story = _save_copies_checking_a_full_recount(
        [
            ("https://wire.example/a", BODY, _verdict(False, 0.2, ())),
            ("https://one.example/a", BODY, _verdict(True, 0.9, ("military_aid", "sanctions"))),
            ("https://two.example/a", BODY + " More.", _verdict(False, 0.4, ("battlefield",))),
            ("https://three.example/a", BODY, _verdict(True, 0.7, ("sanctions", "military_aid"))),
        ]
    )
    assert story["topics"] == ["military_aid", "sanctions", "battlefield"]
    assert story["security_score"] == pytest.approx(0.9)
    assert story["is_ukraine_security"] is True
    assert story["article_count"] == 4
    assert story["source_count"] == 4


def test_band_index_written_and_replaced(database_url: str) -> None:
    saved = factories.save_article()
    bands = _count(ArticleBand)
    assert bands > 0
    factories.save_article()
    assert _count(ArticleBand) == bands
    assert saved.article_id


def _bands_of(article_id: int) -> int:
    with session_scope() as session:
        return len(
            session.exec(select(ArticleBand).where(ArticleBand.article_id == article_id)).all()
        )


def test_exact_copies_are_not_indexed_and_later_copies_join_through_the_original(
    database_url: str,
) -> None:
    """The n-th copy of a wire story meets the original, not n - 1 indexed copies."""
    wire = SEED_BODY
    original = factories.save_article(body=wire)
    copies = [  # exact copies (the same text) on other sites
        factories.save_article(url=f"https://partner{n}.example/w", body=wire) for n in range(3)
    ]
    # A near copy: the last third cut and a paragraph of local reporting added.
    near = wire[: len(wire) * 2 // 3] + "\nOur correspondent in Kyiv adds local reaction." * 3
    near_copy = factories.save_article(url="https://near.example/a", body=near)
    assert [c.action for c in copies] == ["duplicate"] * 3
    assert {c.duplicate_of_id for c in copies} == {original.article_id}
    assert near_copy.action in ("duplicate", "near_duplicate")
    assert {c.story_id for c in [*copies, near_copy]} == {original.story_id}
    assert _bands_of(original.article_id) > 0
    assert [_bands_of(c.article_id) for c in copies] == [0, 0, 0]
    # Saving a copy again (a re-fetch) keeps it out of the index.
    again = factories.save_article(url="https://partner0.example/w", body=wire)
    assert again.action == "updated"
    assert _bands_of(again.article_id) == 0


def _band_keys_of(article_id: int) -> set[str]:
    with session_scope() as session:
        return set(
            session.exec(
                select(ArticleBand.band_key).where(ArticleBand.article_id == article_id)
            ).all()
        )


def _keys_of(body: str = BODY) -> set[str]:
    return set(dedup.index_keys(article_record(body=body).fingerprint))


def test_rerun_of_a_stored_article_converges_to_its_own_bands(database_url: str) -> None:
    """A new article's bands are written without a DELETE first; an at-least-once re-run
    (the same entry stored again) and a re-fetch with another body still end with exactly
    the keys of the body stored, none left over and none twice."""
    other = BODY.replace("drones", "missiles").replace("Paris", "London") + " Talks resume."
    first = factories.save_article()
    assert first.action == "created"
    assert _band_keys_of(first.article_id) == _keys_of()
    again = factories.save_article()  # the same entry delivered again
    assert (again.action, again.article_id) == ("updated", first.article_id)
    assert _band_keys_of(first.article_id) == _keys_of()
    refetched = factories.save_article(body=other)
    assert refetched.article_id == first.article_id
    assert _keys_of(body=other) != _keys_of()
    assert _band_keys_of(first.article_id) == _keys_of(body=other)
    assert _count(ArticleBand) == len(_keys_of(body=other))


def test_new_article_on_a_reused_id_gets_only_its_own_bands(database_url: str) -> None:
    """SQLite hands out the id of a deleted newest article again; the foreign key's
    ON DELETE CASCADE took that article's bands with it, so the new article, whose
    bands are inserted without a DELETE first, is not indexed under the old body."""
    other_body = (
        "The city council approved a new budget for public libraries on Monday, adding "
        "opening hours and a programme of children's reading clubs across all districts. "
    ) * 6
    gone = factories.save_article()
    assert _band_keys_of(gone.article_id)
    with session_scope() as session:
        session.execute(sa.delete(Article).where(col(Article.id) == gone.article_id))
    assert _count(ArticleBand) == 0
    new = factories.save_article(url="https://city.example/libraries", body=other_body)
    if database_url.startswith("sqlite"):
        assert new.article_id == gone.article_id  # the case this test is about
    assert new.action == "created"
    assert _band_keys_of(new.article_id) == _keys_of(body=other_body)
    assert _count(ArticleBand) == len(_keys_of(body=other_body))


def test_entries_insert_once(database_url: str) -> None:
    item = feed_item(guid="x", url="https://n.example/1")
    feed_id = add_feed()
    first = add_entries(feed_id, item, item)
    again = add_entries(feed_id, item)
    assert len(first) == 1
    assert again == []
    assert _count(Entry) == 1


def test_entries_keep_every_field_and_insert_once(database_url: str) -> None:
    """Every column of a poll's items comes back as written, on both databases: the
    PostgreSQL path sends them as one array per column (``_INSERT_ITEMS_PG``), so
    nulls, non-ASCII text, a naive time (UTC, as ``UTCDateTime`` reads it) and an
    aware one in another zone are the cases that could differ."""
    kyiv = timezone(timedelta(hours=2))
    items = [
        FeedItem(
            entry_key="k1",
            url="https://n.example/1",
            guid="urn:1",
            title='Зеленський: "гарантії", {braces}, NULL',
            summary="a,b\\c",
            author="Олена",
            published_at=datetime(2026, 12, 5, 10, 30, tzinfo=kyiv),
        ),
        FeedItem(
            entry_key="k2",
            url="https://n.example/2",
            guid=None,
            title=None,
            summary=None,
            author=None,
            published_at=None,
        ),
        FeedItem(
            entry_key="k3",
            url="https://n.example/3",
            guid="",
            title="",
            summary="NULL",
            author=None,
            published_at=datetime(2026, 12, 5, 8, 30),  # naive: taken as UTC
        ),
    ]
    feed_id = add_feed()
    with session_scope() as session:
        first = store.add_entries(session, feed_id=feed_id, items=items[:2], crawl_request_id=7)
    with session_scope() as session:
        second = store.add_entries(session, feed_id=feed_id, items=items, crawl_request_id=7)
    assert len(first) == 2
    assert len(second) == 1
    assert set(first).isdisjoint(second)
    with session_scope() as session:
        rows = {e.entry_key: e for e in session.exec(select(Entry)).all()}
    assert set(rows) == {"k1", "k2", "k3"}
    for item in items:
        row = rows[item.entry_key]
        assert (row.url, row.guid, row.title, row.summary, row.author) == (
            item.url,
            item.guid,
            item.title,
            item.summary,
            item.author,
        )
        assert (row.feed_id, row.status, row.attempts, row.crawl_request_id) == (
            feed_id,
            "pending",
            0,
            7,
        )
        assert row.first_seen_at == row.updated_at
    assert rows["k1"].published_at == datetime(2026, 12, 5, 8, 30, tzinfo=UTC)
    assert rows["k2"].published_at is None
    assert rows["k3"].published_at == datetime(2026, 12, 5, 8, 30, tzinfo=UTC)


def test_an_entry_too_long_for_its_column_is_refused_not_cut(database_url: str) -> None:
    """PostgreSQL: the items' arrays are sent as unbounded text, so the column's own limit
    refuses a GUID longer than 2,048 characters, as a row-by-row insert would; a cast to
    ``VARCHAR(2048)[]`` would have cut it silently. (SQLite does not enforce lengths.)"""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    item = feed_item(guid="g" * 3000, url="https://n.example/long")
    feed_id = add_feed()
    with pytest.raises(sa.exc.DataError, match="too long"):
        add_entries(feed_id, item)
    assert _count(Entry) == 0


def _lease_of(feed_id: int) -> tuple[str | None, object]:
    with session_scope() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        return feed.lease_owner, feed.lease_until


def _start(feed_id: int, owner: str, **kwargs: object) -> store.PollTarget | str:
    with session_scope() as session:
        return store.start_poll(
            session,
            feed_id=feed_id,
            owner=owner,
            now=utcnow(),
            lease_seconds=60,
            force=bool(kwargs.get("force", False)),
        )


def test_start_poll_takes_the_lease_and_reads_history_only_for_a_conditional_get(
    database_url: str,
) -> None:
    feed_id = add_feed()
    target = _start(feed_id, "a")
    assert isinstance(target, store.PollTarget)
    assert (target.url, target.etag, target.conditional, target.history) == (
        "https://feed.example/rss",
        None,
        False,
        None,
    )
    assert _lease_of(feed_id)[0] == "a"
    assert _start(feed_id, "b") == "lease held elsewhere"
    assert _start(10_000, "a") == "no such feed"
    with session_scope() as session:
        session.execute(
            sa.update(Feed)
            .where(col(Feed.id) == feed_id)
            .values(etag='"v1"', lease_owner=None, lease_until=None)
        )
    target = _start(feed_id, "b")
    assert isinstance(target, store.PollTarget)
    assert target.conditional
    assert target.etag == '"v1"'
    assert target.history == store.FetchHistory(last_full_fetch_at=None, not_modified_since=0)
    forced = _start(feed_id, "b", force=True)  # the same owner may take its lease again
    assert isinstance(forced, store.PollTarget)
    assert not forced.conditional
    assert forced.history is None


def _record_success(feed_id: int, owner: str) -> None:
    now = utcnow()
    result = FetchResult(
        url="https://feed.example/rss",
        final_url="https://feed.example/rss",
        status=200,
        headers={"etag": '"v2"'},
        body=b"<rss/>",
        elapsed_ms=1,
    )
    parsed = ParsedFeed(
        title="Feed",
        site_url=None,
        language=None,
        ttl_seconds=None,
        bozo=False,
        bozo_message=None,
        items=[feed_item(guid=f"{owner}-1", url="https://n.example/1")],
    )
    with session_scope() as session:
        store.record_poll_success(
            session,
            feed_id=feed_id,
            owner=owner,
            poll=FeedPoll(feed_id=feed_id, started_at=now, status="ok"),
            started=0.0,
            result=result,
            new_hash="h",
            parsed=parsed,
            stale=None,
            settings=Settings(),
            now=now,
        )


def test_finishing_a_poll_gives_up_only_its_own_lease(database_url: str) -> None:
    """The lease is released in the same UPDATE as the feed's new state (a CASE on the
    row's owner): a poll whose lease expired and was taken over leaves it to the new
    owner, yet still records what it fetched."""
    feed_id = add_feed()
    assert isinstance(_start(feed_id, "a"), store.PollTarget)
    _record_success(feed_id, "a")
    assert _lease_of(feed_id) == (None, None)
    assert isinstance(_start(feed_id, "a"), store.PollTarget)
    with session_scope() as session:  # a's lease expired; b took the feed
        session.execute(sa.update(Feed).where(col(Feed.id) == feed_id).values(lease_owner="b"))
    _record_success(feed_id, "a")
    owner, until = _lease_of(feed_id)
    assert owner == "b"
    assert until is not None
    with session_scope() as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        assert (feed.etag, feed.last_body_hash, feed.title) == ('"v2"', "h", "Feed")
        assert len(session.exec(select(FeedPoll)).all()) == 2
        assert len(session.exec(select(Entry)).all()) == 1  # a-1 once: the same guid


def _attempts(entry_id: int) -> int:
    with session_scope() as session:
        entry = session.get(Entry, entry_id)
        assert entry is not None
        return entry.attempts


def test_first_run_counts_its_attempt_when_it_ends(database_url: str) -> None:
    """The normal path: one write at the end counts the attempt (no count-at-start write)."""
    entry_id = factories.add_entry()
    with session_scope() as session:
        saved = store.save_article(session, article_record())
        store.mark_entry_stored(
            session, entry_id=entry_id, article_id=saved.article_id, count_attempt=True
        )
    assert _attempts(entry_id) == 1


def test_repeat_counts_the_uncounted_first_run(database_url: str) -> None:
    """A redelivery after a first run died uncounted counts both; later repeats count one."""
    entry_id = factories.add_entry()
    with session_scope() as session:
        assert store.begin_entry_attempt(session, entry_id=entry_id, at_least=2) == 2
    with session_scope() as session:
        assert store.begin_entry_attempt(session, entry_id=entry_id, at_least=2) == 3
    with session_scope() as session:
        store.mark_entry_failed(session, entry_id=entry_id, error="x", error_class="timeout")
        assert store.begin_entry_attempt(session, entry_id=entry_id) == 4
        saved = store.save_article(session, article_record())
        store.mark_entry_stored(session, entry_id=entry_id, article_id=saved.article_id)
    assert _attempts(entry_id) == 4
    with session_scope() as session:  # stored entries are not counted again
        assert store.begin_entry_attempt(session, entry_id=entry_id, at_least=2) is None


def test_feed_lease_is_exclusive_and_expires(database_url: str) -> None:
    now = utcnow()
    fid = add_feed()
    with session_scope() as session:
        assert store.acquire_feed_lease(session, feed_id=fid, owner="a", now=now, lease_seconds=60)
    with session_scope() as session:
        assert not store.acquire_feed_lease(
            session, feed_id=fid, owner="b", now=now, lease_seconds=60
        )
        assert store.acquire_feed_lease(session, feed_id=fid, owner="a", now=now, lease_seconds=60)
    with session_scope() as session:
        later = now + timedelta(seconds=61)
        assert store.acquire_feed_lease(
            session, feed_id=fid, owner="b", now=later, lease_seconds=60
        )


def test_due_feeds_are_claimed_once(database_url: str) -> None:
    for n in range(5):
        add_feed(name=f"f{n}")
    now = utcnow() + timedelta(seconds=1)
    with session_scope() as session:
        first = store.due_feed_ids(session, now=now, limit=3, claim_seconds=300)
    with session_scope() as session:
        second = store.due_feed_ids(session, now=now, limit=10, claim_seconds=300)
    with session_scope() as session:
        third = store.due_feed_ids(session, now=now, limit=10, claim_seconds=300)
    assert len(first) == 3
    assert len(second) == 2
    assert not set(first) & set(second)
    assert third == []


def test_racing_writers_store_one_story(database_url: str) -> None:
    """Eight threads store copies of one story at once: one story, one row per URL."""
    records = [
        article_record(url=f"https://site{n}.example/story", title=f"Drones over Kyiv ({n})")
        for n in range(8)
    ]
    barrier = threading.Barrier(len(records))
    errors: list[BaseException] = []

    def save(record: store.ArticleRecord) -> None:
        try:
            barrier.wait()
            with session_scope() as session:
                store.save_article(session, record)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(r,)) for r in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert _count(Article) == 8
    assert _count(Story) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_finds_near_copy_candidates_by_index_probes_without_statistics(
    database_url: str,
) -> None:
    """On PostgreSQL the candidates are one index probe per band key, whatever the
    planner knows: a young ``article_bands`` without statistics once made it read the
    whole table for ``band_key IN (74 keys)``, a scan that grew with every article.
    And an exact copy of a stored body never reaches the band index."""
    from worker.store.articles import _LOOKUP

    stored = factories.save_article()
    fp = dedup.fingerprint(title="Probe", body=SEED_BODY, published_at=utcnow())
    keys = sorted(set(dedup.query_keys(fp)))
    assert len(keys) > 60
    with session_scope() as session:
        connection = session.connection()
        connection.exec_driver_sql(  # 20,000 unrelated keys, never analysed
            "INSERT INTO article_bands (band_key, article_id)"
            f" SELECT 'filler-' || g, {stored.article_id} FROM generate_series(1, 20000) AS g"
        )
        compiled = _LOOKUP["postgresql"].compile(dialect=connection.dialect)
        params = compiled.construct_params(
            {
                "canonical_url": "https://nowhere.example/",
                "feed_id": None,
                "guid": None,
                "content_hash": None,
                "keys": keys,
            }
        )
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql("EXPLAIN " + compiled.string, params)
        )
        # An exact copy of a stored body: the candidates are not looked up at all.
        stored_hash = connection.exec_driver_sql(
            f"SELECT content_hash FROM articles WHERE id = {stored.article_id}"
        ).scalar_one()
        exact = compiled.construct_params({**params, "content_hash": stored_hash})
        ran = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + compiled.string, exact
            )
        )
    band_probes = [line for line in ran.splitlines() if "article_bands_pkey" in line]
    assert band_probes, ran
    assert all("never executed" in line for line in band_probes), ran
    assert "Seq Scan on article_bands" not in plan, plan
    # Each key of the unnested array probes the primary key (band_key, article_id).
    assert "Function Scan on unnest" in plan, plan
    assert re.search(r"Index (Only )?Scan (on|using) article_bands_pkey", plan), plan


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_writes_an_article_that_starts_a_story_in_one_statement(
    database_url: str,
) -> None:
    """Most stored articles start a story of their own. On PostgreSQL the article, its
    new story (already counting it) and its band keys go in one statement, after the
    dedup lock and the lookup; a full recount of the story agrees with what it wrote."""
    with counted_statements() as statements:
        saved = factories.save_article(
            classification=_verdict(True, 0.8, ("military_aid", "sanctions"))
        )
    assert saved.action == "created"
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    assert len(writes) == 2, writes  # the dedup lock's upsert, then everything else
    assert "INSERT INTO articles" in writes[1]
    assert "INSERT INTO stories" in writes[1]
    assert "INSERT INTO article_bands" in writes[1]
    written = _story_fields(saved.story_id)
    assert written["first_article_id"] == saved.article_id
    assert (written["article_count"], written["source_count"]) == (1, 1)
    assert (written["is_ukraine_security"], written["security_score"]) == (True, 0.8)
    assert written["topics"] == ["military_aid", "sanctions"]
    with session_scope() as session:
        assert session.exec(
            select(ArticleBand).where(col(ArticleBand.article_id) == saved.article_id)
        ).first()
        store.refresh_story(session, saved.story_id)
    assert _story_fields(saved.story_id) == written


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(
        st.one_of(
            st.sampled_from(["NULL", "null", "", "a b", "{x}", 'q"t', "b\\s", ",", "07:3fa2"]),
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
        ),
        max_size=8,
    )
)
def test_band_keys_sent_as_one_array_literal_reach_postgres_unchanged(
    database_url: str, items: list[str]
) -> None:
    """The literal :class:`store.sql.TextArray` sends is read back by PostgreSQL's own
    ``array_in`` as exactly the list given, quoting or not."""
    statement = sa.select(sa.func.unnest(sa.bindparam("keys", type_=TextArray)))
    with session_scope() as session:
        back = [row[0] for row in session.connection().execute(statement, {"keys": items})]
    assert back == items


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_real_band_keys_go_unquoted(database_url: str) -> None:
    record = article_record(body=SEED_BODY)
    keys = dedup.query_keys(record.fingerprint) + dedup.index_keys(record.fingerprint)
    assert len(keys) > 40
    literal = text_array_literal(keys)
    assert '"' not in literal
    assert literal == "{" + ",".join(keys) + "}"
