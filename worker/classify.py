"""Decide whether an article is a Ukraine-security story, and about which topics.

Definition (see docs/classifier.md): a story is Ukraine-security when its *main subject* is
the security of Ukraine in the Russia-Ukraine war - ceasefire and peace talks, security
guarantees, peacekeeping/reassurance forces, military aid, the battlefield and strikes, air
defence, sanctions and European/NATO defence decisions as they bear on Ukraine, and
nuclear-plant safety in the war zone.

Why a weighted rule layer and not a model: the worker must run offline on CPU in well
under 50 ms per article, ship everything it needs and keep the install light. Rules over
curated multilingual term tables (``worker.classifier_lexicon``) meet that, are auditable
(every decision carries the terms that caused it) and work on the two shapes of input we
get: feed items with a title and a one-line description, and full extracted bodies.

How the score is built, and why each part exists:

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

The function is pure and deterministic: no I/O, no global state besides regexes compiled
at import time.
"""

from __future__ import annotations

import html
import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import classifier_lexicon as lex

CLASSIFIER_VERSION: str = "rules-2026.11.1"
"""Bump whenever rules, weights or term tables change, then run ``ingest reclassify``."""

TOPICS: tuple[str, ...] = (
    "ceasefire_diplomacy",
    "security_guarantees",
    "peacekeeping_force",
    "military_aid",
    "battlefield",
    "sanctions",
    "european_defence",
    "nuclear_safety",
)

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


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict for one article, as stored on the article row."""

    is_ukraine_security: bool
    score: float
    topics: tuple[str, ...]
    evidence: dict[str, list[str]] = field(hash=False)
    version: str


# --- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    start: int
    term: int
    text: str


def _split_top_level(pattern: str) -> list[str]:
    """Split a pattern on ``|`` that are not inside brackets or parentheses."""
    branches: list[str] = []
    depth = 0
    in_class = False
    current: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            current.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            branches.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    branches.append("".join(current))
    return branches


class _Matcher:
    """One precompiled alternation per category, with word boundaries that work for Cyrillic.

    Every branch sits in its own capturing group and ``match.lastindex`` maps back to the
    term, so nothing is re-run to find out what matched. Branches are factored by their
    first letter (``k(?:(yiv\\w*)|(iev\\w*))``): at each word start the regex engine then
    tries only the few terms sharing that letter instead of all of them, which keeps a
    20,000-character body well inside the latency budget. Spaces match whitespace or hyphens.
    """

    def __init__(self, terms: Iterable[tuple[str, float]]) -> None:
        self.weights: list[float] = []
        by_letter: dict[str, list[tuple[str, int]]] = {}
        misc: list[tuple[str, int]] = []
        for term_id, (pattern, weight) in enumerate(terms):
            self.weights.append(weight)
            for branch in _split_top_level(pattern.replace(" ", r"[\s\-]+")):
                head = branch[:1]
                if head.isalpha() and branch[1:2] not in ("?", "*", "+", "{"):
                    by_letter.setdefault(head, []).append((branch[1:], term_id))
                else:
                    misc.append((branch, term_id))
        parts: list[str] = []
        self._group_term: list[int] = []
        for head, branches in by_letter.items():
            inner = []
            # Longest first, so "war in ukraine" wins over "war" at the same position.
            for rest, term_id in sorted(branches, key=lambda br: -len(br[0])):
                inner.append("(" + rest + ")")
                self._group_term.append(term_id)
            parts.append(re.escape(head) + "(?:" + "|".join(inner) + ")")
        for branch, term_id in sorted(misc, key=lambda br: -len(br[0])):
            parts.append("(" + branch + ")")
            self._group_term.append(term_id)
        self.regex = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.UNICODE)

    def find(self, text: str) -> list[_Hit]:
        hits: list[_Hit] = []
        for m in self.regex.finditer(text):
            term = self._group_term[(m.lastindex or 1) - 1]
            hits.append(_Hit(m.start(), term, m.group(0)))
        return hits


_UKRAINE = _Matcher(lex.UKRAINE)
_SECURITY = _Matcher(lex.SECURITY)
_TOPICS: dict[str, _Matcher] = {name: _Matcher(lex.TOPIC_TERMS[name]) for name in TOPICS}
_OTHER = _Matcher(lex.OTHER_CONFLICT)
_OFF_TOPIC = _Matcher(lex.OFF_TOPIC)
_BOILERPLATE = re.compile("|".join(lex.BOILERPLATE), re.UNICODE)
_APOSTROPHES = re.compile("[\u2019\u2018\u02bc\u0060\u00b4\u2032]")
_DASHES = re.compile("[\u2010-\u2015\u2212]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    """Casefold and unify the characters feeds spell in many ways (apostrophes, dashes, ё)."""
    text = html.unescape(text)
    text = _APOSTROPHES.sub("'", text)
    text = _DASHES.sub("-", text)
    return text.casefold().replace("ё", "е")


# --- scoring helpers -----------------------------------------------------------------------


def _title_points(hits: list[_Hit], weights: list[float]) -> float:
    """Each distinct term in a title counts once: titles are short and repetition is noise."""
    return sum(weights[t] for t in {h.term for h in hits})


def _body_points(hits: list[_Hit], weights: list[float]) -> float:
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
    text: str, ukraine: list[_Hit], security: list[_Hit]
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


def _distinct(hits: Iterable[_Hit], limit: int = MAX_EVIDENCE_TERMS) -> list[str]:
    """Matched terms in order of first appearance, without duplicates (JSON-friendly)."""
    seen: list[str] = []
    for h in hits:
        term = _SPACES.sub(" ", h.text)
        if term not in seen:
            seen.append(term)
            if len(seen) >= limit:
                break
    return seen


# --- public API ----------------------------------------------------------------------------


def classify(*, title: str, body: str, language: str | None = None) -> Classification:
    """Classify one article as Ukraine-security (or not), with score, topics and evidence.

    ``language`` is accepted for interface stability but not used to switch lexicons: feeds
    mislabel languages and titles often mix scripts, and running every lexicon costs little.
    """
    del language  # all lexicons always run; see docstring
    t = _normalise(title or "")
    b = _BOILERPLATE.sub(" ", _normalise((body or "")[:MAX_BODY_CHARS]))
    n_words = max(1, len(b.split()))

    ukr_t, ukr_b = _UKRAINE.find(t), _UKRAINE.find(b)
    sec_t, sec_b = _SECURITY.find(t), _SECURITY.find(b)
    topic_hits = {name: (m.find(t), m.find(b)) for name, m in _TOPICS.items()}
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
        weights = _TOPICS[name].weights
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
    score = min(1.0, max(0.0, u * s * other_factor * off_factor))
    score = round(score, 4)
    is_security = score >= THRESHOLD

    topics: tuple[str, ...] = ()
    if is_security:
        best = max(topic_points.values(), default=0.0)
        ranked = sorted(
            (p, name)
            for name, p in topic_points.items()
            if p >= TOPIC_MIN_POINTS and p >= TOPIC_RELATIVE_MIN * best
        )
        topics = tuple(name for _, name in sorted(ranked, key=lambda x: (-x[0], x[1])))

    evidence: dict[str, list[str]] = {
        "ukraine_context": _distinct(ukr_t + ukr_b),
        "security_context": _distinct(
            sec_t + sec_b + [h for ht, hb in topic_hits.values() for h in ht + hb]
        ),
    }
    for name in TOPICS:
        ht, hb = topic_hits[name]
        if ht or hb:
            evidence[name] = _distinct(ht + hb)
    if snippets:
        evidence["snippets"] = snippets
    if oth_t or oth_b:
        evidence["other_conflict"] = _distinct(oth_t + oth_b)
    if off_t or off_b:
        evidence["off_topic"] = _distinct(off_t + off_b)

    return Classification(
        is_ukraine_security=is_security,
        score=score,
        topics=topics,
        evidence=evidence,
        version=CLASSIFIER_VERSION,
    )
