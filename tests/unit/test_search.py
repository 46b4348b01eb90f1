"""The search language: what a query means, and that no input breaks FTS5's parser."""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.search import (
    MAX_QUERY_CHARS,
    Alternative,
    QueryError,
    SearchQuery,
    parse_query,
)


def q(*alternatives: tuple[tuple[str, ...], tuple[str, ...]]) -> SearchQuery:
    return SearchQuery(tuple(Alternative(inc, exc) for inc, exc in alternatives))


MEANINGS = [
    ("zaporizhzhia plant", q((("zaporizhzhia", "plant"), ()))),
    ('"nuclear plant" strike', q((("nuclear plant", "strike"), ()))),
    ("drone -shahed", q((("drone",), ("shahed",)))),
    ('drone -"shahed 136"', q((("drone",), ("shahed 136",)))),
    ("a b OR c d", q((("a", "b"), ()), (("c", "d"), ()))),
    ("a or b", q((("a",), ()), (("b",), ()))),
    ("a -b or c", q((("a",), ("b",)), (("c",), ()))),
    # a stray OR (leading, trailing, doubled) is dropped; a quoted "or" is a word
    ("OR a OR OR b OR", q((("a",), ()), (("b",), ()))),
    ('"or" war', q((("or", "war"), ()))),
    # operators of FTS5 and tsquery are text
    ("title:kyiv NEAR(a b) x* a&b !c", q((("title:kyiv", "NEAR(a", "b)", "x*", "a&b", "!c"), ()))),
    # an unclosed quote runs to the end; a word ends where a quote begins
    ('"zaporizhzhia plant', q((("zaporizhzhia plant",), ()))),
    ('kyiv"drone attack"', q((("kyiv", "drone attack"), ()))),
    # terms without a letter or digit hold no word and are dropped
    ('war - -- "" !!! peace', q((("war", "peace"), ()))),
    ("Запоріжжя -АЕС", q((("Запоріжжя",), ("АЕС",)))),
    ("a\x00b\tc", q((("a", "b", "c"), ()))),
]


@pytest.mark.parametrize(("text", "meaning"), MEANINGS)
def test_parse(text: str, meaning: SearchQuery) -> None:
    assert parse_query(text) == meaning


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n", "\x00"])
def test_blank_is_no_search(text: str | None) -> None:
    assert parse_query(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("!!!", "no word"),
        ('""', "no word"),
        ("OR", "no word"),
        ("-war", "not negated"),
        ("peace OR -war", "not negated"),
        ("x" * (MAX_QUERY_CHARS + 1), "too long"),
    ],
)
def test_refused(text: str, reason: str) -> None:
    with pytest.raises(QueryError, match=reason):
        parse_query(text)


def test_renderings() -> None:
    query = parse_query('nuclear "power plant" -"shahed 136" OR title:x*')
    assert query is not None
    assert query.fts5() == ('(("nuclear" AND "power plant") NOT ("shahed 136")) OR ("title:x*")')
    assert query.websearch() == '"nuclear" "power plant" -"shahed 136" or "title:x*"'


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    """An FTS5 table tokenized like ``articles_fts``, with a few rows to match."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, summary, body,"
        " tokenize='porter unicode61 remove_diacritics 2')"
    )
    connection.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [("Kyiv strike", None, "title: near the plant"), ("Удари по Запоріжжю", "x", "АЕС")],
    )
    yield connection
    connection.close()


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80) | st.lists(st.sampled_from(
    ['"', "-", "OR", "or", "*", ":", "(", ")", "NEAR", "AND", "NOT", "^", "+", "title:",
     "{title body}", " ", "кий", "x", "\x00", "'", "\\", "\u0301", "ß"]
)).map("".join))  # fmt: skip
@example('"')
@example("-")
@example('-"')
@example("NEAR(")
@example("^x")
@example("title:")
def test_any_input_is_a_valid_fts5_query_or_refused(fts: sqlite3.Connection, text: str) -> None:
    """Whatever a reader types, FTS5 runs the rendering (no OperationalError), or the
    parser says why there is nothing to run."""
    try:
        query = parse_query(text)
    except QueryError:
        return
    if query is None:
        assert all(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in text)
        return
    fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.fts5(),)).fetchall()
    assert '"' not in "".join(t for a in query.alternatives for t in (*a.include, *a.exclude))


def test_operators_in_terms_are_searched_as_words(fts: sqlite3.Connection) -> None:
    """``title:`` and ``NEAR`` are words in a search, not a column filter or an operator."""
    for text, expected in [("title:near", [1]), ("near plant", [1]), ("title:kyiv", [])]:
        query = parse_query(text)
        assert query is not None
        found = fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.fts5(),)).fetchall()
        assert [r[0] for r in found] == expected, text
