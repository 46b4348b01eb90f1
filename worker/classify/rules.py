"""The weighted rule layer: term matches turned into a score, topics' points and evidence.

It reads both input shapes - feed items with a title and a one-line description, and full
extracted bodies - and is auditable: every decision carries the terms that caused it. Its
score decides languages neither learned stage has seen, and its internals are the learned
stages' ``r:`` features (``worker.classify.features``).

How the rule score is built, and why each part exists:

* Two kinds of evidence are required together: *Ukraine context* (Ukraine, Kyiv, Donbas,
  Zelensky, ...) and *security context* (troops, missiles, ceasefire, sanctions, ...). The
  score is a product, so neither alone can make a story positive - "Ukraine's high jumper
  wins gold" and "Sudan ceasefire collapses" both stay low.
* The title counts more than the body, and the first few hundred characters of the body
  count more than the rest: editors put the main subject first.
* Ukraine mentions in a long body are scaled by their density, so a 20,000-character story
  about something else that names Ukraine once in passing does not qualify; a sentence that
  mentions Ukraine *and* security together adds extra weight because that is what
  on-subject text looks like.
* Other conflicts (Gaza, Sudan, Iraq, ...) dilute the Ukraine context in proportion to how
  much of the text they take, and sport/culture/economy/elections vocabulary dampens the
  score unless the security evidence is strong - the two classic false positives.

Pure and deterministic: no I/O, no global state besides regexes compiled at import time.
"""

from __future__ import annotations

import html
import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from . import lexicon as lex
from .matching import Hit, Matcher
from .topics import TOPIC_TERMS, TOPICS

# --- tuning constants (chosen on the dev split only; see docs/classifier.md) ------------
THRESHOLD = 0.6
"""Score at or above which an article is Ukraine-security."""
TITLE_WEIGHT_UKRAINE = 2.5
TITLE_WEIGHT_SECURITY = 2.0
TITLE_WEIGHT_OTHER = 2.5
TITLE_WEIGHT_OFF_TOPIC = 2.0
TITLE_WEIGHT_TOPIC = 2.0
LEAD_CHARS = 600
"""Body prefix treated as the lead paragraph (weighted x LEAD_BOOST)."""
LEAD_BOOST = 1.5
REPEAT_GAIN = 0.3
"""Extra weight per log-count of a repeated term; repeats matter, but sub-linearly."""
UKRAINE_SCALE = 1.5
SECURITY_SCALE = 2.0
COOCCURRENCE_POINTS = 0.5
COOCCURRENCE_MAX = 4
OTHER_CONFLICT_DILUTION = 0.8
TOPIC_MIN_POINTS = 1.2
TOPIC_RELATIVE_MIN = 0.25
MAX_BODY_CHARS = 100_000
"""Longer bodies are truncated: the subject is established long before that."""
MAX_EVIDENCE_TERMS = 10
MAX_SNIPPETS = 2
SNIPPET_CHARS = 200

# --- term tables, compiled once --------------------------------------------------------------

_UKRAINE = Matcher(lex.UKRAINE)
_SECURITY = Matcher(lex.SECURITY)
_TOPIC_MATCHERS: dict[str, Matcher] = {name: Matcher(TOPIC_TERMS[name]) for name in TOPICS}
_OTHER = Matcher(lex.OTHER_CONFLICT)
_OFF_TOPIC = Matcher(lex.OFF_TOPIC)
_BOILERPLATE = re.compile("|".join(lex.BOILERPLATE), re.UNICODE)
_APOSTROPHES = re.compile("[\u2019\u2018\u02bc\u0060\u00b4\u2032]")
_DASHES = re.compile("[\u2010-\u2015\u2212]")
_SENTENCE_END = re.compile(r"\s(?:(?<=[.!?]\s)\s*|(?<=\n)\n*)")
r"""Whitespace after . ! or ?, or a run of newlines: ``(?<=[.!?])\s+|\n+``, written to start
with ``\s`` so the regex engine jumps from one whitespace character to the next instead of
trying every position (twice as fast on a long body; same matches, see the unit test)."""
_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    """Casefold and unify the characters feeds spell in many ways (apostrophes, dashes, ё)."""
    text = html.unescape(text)
    text = _APOSTROPHES.sub("'", text)
    text = _DASHES.sub("-", text)
    return text.casefold().replace("ё", "е")


# --- scoring helpers -----------------------------------------------------------------------


def _title_points(hits: list[Hit], weights: list[float]) -> float:
    """Each distinct term in a title counts once: titles are short and repetition is noise."""
    return sum(weights[t] for t in {h.term for h in hits})


def _body_points(hits: list[Hit], weights: list[float]) -> float:
    """Distinct terms count fully, repeats sub-linearly, and the lead paragraph extra."""
    first: dict[int, int] = {}
    count: dict[int, int] = {}
    for h in hits:
        first.setdefault(h.term, h.start)
        count[h.term] = count.get(h.term, 0) + 1
    total = 0.0
    for term, n in count.items():
        lead = LEAD_BOOST if first[term] < LEAD_CHARS else 1.0
        total += weights[term] * lead * (1.0 + REPEAT_GAIN * math.log(n))
    return total


def _saturate(points: float, scale: float) -> float:
    """Map unbounded evidence points to [0, 1): more evidence helps, with diminishing returns."""
    return 1.0 - math.exp(-max(points, 0.0) / scale)


def _density_factor(n_mentions: int, n_words: int) -> float:
    """Down-weight Ukraine mentions that are rare relative to the body length.

    A feed description of 40 words with one mention keeps full weight; a 3,000-word story
    with one mention keeps about a third, so a passing reference cannot carry it.
    """
    if n_mentions == 0:
        return 0.0
    return min(1.0, 0.25 + n_mentions * 150.0 / max(n_words, 1))


def _sentence_spans(text: str) -> list[int]:
    """Start offsets of sentences (cheap splitter: . ! ? or newline)."""
    starts = [0]
    starts.extend(m.end() for m in _SENTENCE_END.finditer(text))
    return starts


def _cooccurring_sentences(
    text: str, ukraine: list[Hit], security: list[Hit]
) -> tuple[int, list[str]]:
    """Count sentences that mention Ukraine and security together; return a few as snippets."""
    if not ukraine or not security:
        return 0, []
    starts = _sentence_spans(text)
    ukr_sentences = {bisect_right(starts, h.start) - 1 for h in ukraine}
    sec_sentences = {bisect_right(starts, h.start) - 1 for h in security}
    both = sorted(ukr_sentences & sec_sentences)
    snippets: list[str] = []
    for idx in both[:MAX_SNIPPETS]:
        end = starts[idx + 1] if idx + 1 < len(starts) else len(text)
        sentence = _SPACES.sub(" ", text[starts[idx] : end]).strip()
        if len(sentence) > SNIPPET_CHARS:
            sentence = sentence[: SNIPPET_CHARS - 1].rstrip() + "\u2026"
        snippets.append(sentence)
    return len(both), snippets


def distinct_terms(hits: Iterable[Hit], limit: int = MAX_EVIDENCE_TERMS) -> list[str]:
    """Matched terms in order of first appearance, without duplicates (JSON-friendly)."""
    seen: list[str] = []
    for h in hits:
        term = _SPACES.sub(" ", h.text)
        if term not in seen:
            seen.append(term)
            if len(seen) >= limit:
                break
    return seen


# --- rule analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleAnalysis:
    """Everything the rule layer computed for one article (also the model's rule features)."""

    title: str
    """Normalised (casefolded) title."""
    body: str
    """Normalised body with feed boilerplate removed."""
    n_words: int
    ukraine: tuple[list[Hit], list[Hit]]
    security: tuple[list[Hit], list[Hit]]
    topic_hits: dict[str, tuple[list[Hit], list[Hit]]]
    other: tuple[list[Hit], list[Hit]]
    off_topic: tuple[list[Hit], list[Hit]]
    cooccurrences: int
    snippets: list[str]
    ukraine_points: float
    security_points: float
    topic_points: dict[str, float]
    other_points: float
    off_points: float
    u: float
    s: float
    other_factor: float
    off_factor: float
    score: float
    """The rule score in [0, 1], rounded to 4 decimals."""


def _combine(
    ukr_points: float, sec_points: float, other_points: float, off_points: float
) -> tuple[float, float, float, float, float]:
    """The rule score from category points: ``(u, s, other_factor, off_factor, score)``."""
    u = _saturate(ukr_points, UKRAINE_SCALE)
    s = _saturate(sec_points, SECURITY_SCALE)
    other_factor = (
        1.0
        if other_points == 0
        else ukr_points / (ukr_points + OTHER_CONFLICT_DILUTION * other_points)
        if ukr_points > 0
        else 0.0
    )
    off_factor = 1.0 / (1.0 + off_points / max(sec_points, 0.5))
    score = round(min(1.0, max(0.0, u * s * other_factor * off_factor)), 4)
    return u, s, other_factor, off_factor, score


def title_only_score(a: RuleAnalysis) -> float:
    """The rule score the title alone would get (feed items are often all title)."""
    topic = sum(
        TITLE_WEIGHT_TOPIC * _title_points(ht, _TOPIC_MATCHERS[name].weights)
        for name, (ht, _) in a.topic_hits.items()
    )
    return _combine(
        TITLE_WEIGHT_UKRAINE * _title_points(a.ukraine[0], _UKRAINE.weights),
        TITLE_WEIGHT_SECURITY * _title_points(a.security[0], _SECURITY.weights) + 0.5 * topic,
        TITLE_WEIGHT_OTHER * _title_points(a.other[0], _OTHER.weights),
        TITLE_WEIGHT_OFF_TOPIC * _title_points(a.off_topic[0], _OFF_TOPIC.weights),
    )[4]


def analyse(title: str, body: str) -> RuleAnalysis:
    """Run the weighted rule layer; pure and deterministic."""
    t = _normalise(title or "")
    b = _BOILERPLATE.sub(" ", _normalise((body or "")[:MAX_BODY_CHARS]))
    n_words = max(1, len(b.split()))

    ukr_t, ukr_b = _UKRAINE.find(t), _UKRAINE.find(b)
    sec_t, sec_b = _SECURITY.find(t), _SECURITY.find(b)
    topic_hits = {name: (m.find(t), m.find(b)) for name, m in _TOPIC_MATCHERS.items()}
    oth_t, oth_b = _OTHER.find(t), _OTHER.find(b)
    off_t, off_b = _OFF_TOPIC.find(t), _OFF_TOPIC.find(b)

    # Ukraine context.
    cooc, snippets = _cooccurring_sentences(
        b, ukr_b, sec_b + [h for _, hb in topic_hits.values() for h in hb]
    )
    ukr_points = (
        TITLE_WEIGHT_UKRAINE * _title_points(ukr_t, _UKRAINE.weights)
        + _density_factor(len(ukr_b), n_words) * _body_points(ukr_b, _UKRAINE.weights)
        + COOCCURRENCE_POINTS * min(cooc, COOCCURRENCE_MAX)
    )

    # Security context: generic vocabulary plus every topic's vocabulary.
    sec_points = TITLE_WEIGHT_SECURITY * _title_points(sec_t, _SECURITY.weights) + _body_points(
        sec_b, _SECURITY.weights
    )
    topic_points: dict[str, float] = {}
    for name, (ht, hb) in topic_hits.items():
        weights = _TOPIC_MATCHERS[name].weights
        topic_points[name] = TITLE_WEIGHT_TOPIC * _title_points(ht, weights) + _body_points(
            hb, weights
        )
    # Topic terms overlap the generic list, so they add at half weight to avoid double counting.
    sec_points += 0.5 * sum(topic_points.values())

    other_points = TITLE_WEIGHT_OTHER * _title_points(oth_t, _OTHER.weights) + _body_points(
        oth_b, _OTHER.weights
    )
    off_points = TITLE_WEIGHT_OFF_TOPIC * _title_points(off_t, _OFF_TOPIC.weights) + _body_points(
        off_b, _OFF_TOPIC.weights
    )

    u, s, other_factor, off_factor, score = _combine(
        ukr_points, sec_points, other_points, off_points
    )
    return RuleAnalysis(
        title=t,
        body=b,
        n_words=n_words,
        ukraine=(ukr_t, ukr_b),
        security=(sec_t, sec_b),
        topic_hits=topic_hits,
        other=(oth_t, oth_b),
        off_topic=(off_t, off_b),
        cooccurrences=cooc,
        snippets=snippets,
        ukraine_points=ukr_points,
        security_points=sec_points,
        topic_points=topic_points,
        other_points=other_points,
        off_points=off_points,
        u=u,
        s=s,
        other_factor=other_factor,
        off_factor=off_factor,
        score=score,
    )
