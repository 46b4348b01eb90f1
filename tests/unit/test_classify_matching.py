"""Term matching: the anchored path finds exactly the hits of a full regex scan, and the
regexes rewritten for speed match what their plain forms match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.classify import lexicon as lex
from worker.classify.matching import Hit, Matcher, _anchors, _literal_prefix, _split_top_level
from worker.classify.rules import _SENTENCE_END
from worker.classify.topics import TOPIC_TERMS

TABLES = {
    "ukraine": lex.UKRAINE,
    "security": lex.SECURITY,
    "other": lex.OTHER_CONFLICT,
    "off_topic": lex.OFF_TOPIC,
    "context": lex.MODEL_CONTEXT,
    **TOPIC_TERMS,
}
# Every table that has anchors at all, whatever their number, so the anchored path is
# checked on the big tables too, not only on those that use it.
ANCHORED = {
    name: m
    for name, m in ((n, Matcher(t, max_anchors=10_000)) for n, t in TABLES.items())
    if m.anchors is not None
}
_PIECES = sorted(
    {a for m in ANCHORED.values() for a in m.anchors or ()}
    | {"ukraine's", "nato", "peace", "keeping", "troops", "of", "the", "s", "x", "7", "$5"}
    | {"ing", "ed", "'", "-", " ", "  ", ".", "\n", "é", "ё", "я", "_", "Σ"}
    | set("aeiouyknrstv")
)


@pytest.mark.parametrize(
    ("branch", "prefix"),
    [
        ("ukrain\\w*", "ukrain"),
        ("slo?v[iy]ansk", "sl"),
        ("colou?r", "colo"),
        ("ab+c", "ab"),
        ("ab{2}", "a"),
        ("kyiv's", "kyiv's"),
        ("peace[\\s\\-]+talks", "peace"),
        ("[ck]at", ""),
        ("\\$?\\d+", ""),
        ("(?:a|b)c", ""),
        (".at", ""),
    ],
)
def test_literal_prefix(branch: str, prefix: str) -> None:
    assert _literal_prefix(branch) == prefix


def test_anchors_of_a_leading_group_and_none_when_a_branch_has_no_literal() -> None:
    assert _anchors(["(?:european|british(?:er)?)[\\s\\-]+troops", "nato", "natoxx"]) == [
        "nato",
        "british",
        "european",
    ]
    assert _anchors(["(?:russia )?ukraine", "kyiv"]) is None
    assert _anchors(["nato", "[ck]at"]) is None
    assert _anchors(["(?:a|[bc])d"]) is None


def test_every_lexicon_table_with_anchors_is_covered() -> None:
    # The small tables the rule layer matches by anchors must be among those checked here.
    assert {"sanctions", "nuclear_safety", "security_guarantees"} <= set(ANCHORED)


_BRANCHES = sorted({b for terms in TABLES.values() for p, _ in terms for b in _split_top_level(p)})
_TERM_TEXT = st.sampled_from(_BRANCHES).flatmap(
    lambda branch: st.from_regex(branch.replace(" ", "[ -]"), fullmatch=True)
)
"""Text that one of the lexicon's terms matches (hypothesis builds it from the regex)."""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_TERM_TEXT, st.sampled_from(_PIECES)), max_size=60).map("".join))
def test_anchored_finds_exactly_what_a_scan_finds(text: str) -> None:
    for name, matcher in ANCHORED.items():
        assert matcher.find_anchored(text) == matcher.scan(text), name


def test_anchored_on_real_matches_and_overlaps() -> None:
    text = (
        "NATO membership: nato-membership talks; senator natoinato "
        "sanctions sanctions'embargo price cap price-cap frozen russian assets "
    ).casefold() * 20
    for name, matcher in ANCHORED.items():
        assert matcher.find_anchored(text) == matcher.scan(text), name
    first = text.index("sanctions")
    assert ANCHORED["sanctions"].find(text)[:2] == [
        Hit(first, 0, "sanctions"),
        Hit(first + 10, 0, "sanctions"),
    ]


def test_the_only_groups_are_the_empty_ones_naming_the_terms() -> None:
    # lastindex must name the term: the lexicon's patterns may not capture.
    for terms in TABLES.values():
        m = Matcher(terms)
        assert m.regex.groups == m.regex.pattern.count("()")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.!?,; \n\t\r\u2028\u00a0\u3000", max_size=40))
def test_sentence_end_regex_matches_its_plain_form(text: str) -> None:
    plain = re.compile(r"(?<=[.!?])\s+|\n+")
    assert [m.span() for m in _SENTENCE_END.finditer(text)] == [
        m.span() for m in plain.finditer(text)
    ]
