"""Decide whether an article is a Ukraine-security story, and about which topics.

Definition (see docs/classifier.md): a story is Ukraine-security when its *main subject* is
the security of Ukraine in the Russia-Ukraine war - ceasefire and peace talks, security
guarantees, peacekeeping/reassurance forces, military aid, the battlefield and strikes, air
defence, sanctions and European/NATO defence decisions as they bear on Ukraine, and
nuclear-plant safety in the war zone.

Two stages, both pure Python and shipped in the package (offline, CPU, well under 50 ms
per article):

1. A weighted rule layer over curated multilingual term tables
   (``worker.classifier_lexicon``): auditable (every decision carries the terms that caused
   it) and working on both input shapes - feed items with a title and a one-line
   description, and full extracted bodies.
2. A learned second stage per script, trained on dev labels only and shipped as plain
   weights: for English, a logistic regression over the rule layer's internal scores,
   which lexicon terms matched and words (``model_features``; ``eval/train_classifier.py``,
   ``worker.classifier_model``); for Ukrainian and Russian, one over the rule scores,
   lexicon matches and word stems (``cyrillic_features``; ``eval/train_cyrillic.py``,
   ``worker/data/classifier_cyrillic.json``). Its calibrated probability is the ``score``;
   topics still come from the rules; ``evidence["model"]`` lists the top contributing
   features. A long English article whose lead the model rejects is also read in a few
   further body windows (``_best_body_window``). Other languages keep the rule decision.

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
from itertools import pairwise

from . import classifier_lexicon as lex
from . import classifier_model as _model
from . import cyrillic_model as _cyrillic

CLASSIFIER_VERSION: str = "hybrid-2026.12.4"
"""Bump whenever rules, weights or term tables change, then run ``ingest reclassify``."""
NEIGHBOURS_VERSION: str = "neighbours-2026.12.6"
"""Version of the optional neighbour method (``INGEST_CLASSIFIER=neighbours``): the hybrid
rule layer and lexicon plus the nearest labelled neighbours in sentence-embedding space
(``worker.neighbours``). Bump with its weights or reference set."""
METHODS: tuple[str, ...] = ("hybrid", "neighbours")
"""Classification methods an operator can choose (``INGEST_CLASSIFIER``)."""


def classifier_version(method: str = "hybrid") -> str:
    """The ``classifier_version`` that ``method`` writes (what ``reclassify`` compares)."""
    if method not in METHODS:
        raise ValueError(f"unknown classifier method {method!r}; choose one of {METHODS}")
    return NEIGHBOURS_VERSION if method == "neighbours" else CLASSIFIER_VERSION


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
MAX_MODEL_EVIDENCE = 8
"""Top contributing model features listed in ``evidence["model"]``."""
MODEL_BODY_CHARS = 1_000
"""Body prefix whose words feed the learned second stage (the lead carries the subject)."""
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
_CONTEXT = _Matcher(lex.MODEL_CONTEXT)
_TERM_NAMES: dict[str, list[str]] = {
    "ctx": [pattern for pattern, _ in lex.MODEL_CONTEXT],
    "ukr": [pattern for pattern, _ in lex.UKRAINE],
    "sec": [pattern for pattern, _ in lex.SECURITY],
    "oth": [pattern for pattern, _ in lex.OTHER_CONFLICT],
    "off": [pattern for pattern, _ in lex.OFF_TOPIC],
    **{name: [pattern for pattern, _ in lex.TOPIC_TERMS[name]] for name in TOPICS},
}
"""Lexicon patterns by category and term index: the names of the model's ``lx:`` features."""
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


# --- rule analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleAnalysis:
    """Everything the rule layer computed for one article (also the model's rule features)."""

    title: str
    """Normalised (casefolded) title."""
    body: str
    """Normalised body with feed boilerplate removed."""
    n_words: int
    ukraine: tuple[list[_Hit], list[_Hit]]
    security: tuple[list[_Hit], list[_Hit]]
    topic_hits: dict[str, tuple[list[_Hit], list[_Hit]]]
    other: tuple[list[_Hit], list[_Hit]]
    off_topic: tuple[list[_Hit], list[_Hit]]
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


def _title_only_score(a: RuleAnalysis) -> float:
    """The rule score the title alone would get (feed items are often all title)."""
    topic = sum(
        TITLE_WEIGHT_TOPIC * _title_points(ht, _TOPICS[name].weights)
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


# --- learned second stage: features and inference ---------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_EN_FUNCTION_WORDS = frozenset(
    {
        "the",
        "of",
        "and",
        "to",
        "for",
        "with",
        "that",
        "is",
        "was",
        "are",
        "were",
        "has",
        "have",
        "had",
        "from",
        "by",
        "its",
        "it",
        "will",
        "after",
        "over",
        "says",
        "said",
        "this",
        "than",
        "which",
        "who",
        "would",
        "could",
        "their",
        "they",
        "he",
        "she",
        "but",
        "not",
        "been",
    }
)
_OTHER_FUNCTION_WORDS = frozenset(
    {
        "de",
        "la",
        "le",
        "les",
        "des",
        "du",
        "une",
        "un",
        "et",
        "est",
        "sur",
        "pour",
        "dans",
        "au",
        "aux",
        "der",
        "die",
        "das",
        "und",
        "ein",
        "eine",
        "einen",
        "mit",
        "von",
        "für",
        "ist",
        "nicht",
        "dem",
        "den",
        "zu",
        "auf",
    }
)


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1.0 - 1e-3)
    return math.log(p / (1.0 - p))


def _lead_text(analysis: RuleAnalysis) -> str:
    """Title and lead: what the learned stages read, and what decides their language."""
    return analysis.title + " " + analysis.body[:MODEL_BODY_CHARS]


def _language_code(language: str) -> str:
    """``"en-GB"``, ``"uk_UA"``, ``" RU "`` -> ``"en"``, ``"uk"``, ``"ru"``."""
    return language.strip().lower().replace("_", "-").split("-")[0]


def _cyrillic_share(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_CYRILLIC.findall(text)) / letters if letters else 0.0


def _model_applies(language: str | None, analysis: RuleAnalysis) -> bool:
    """The model's word features are English: other languages keep the rule decision.

    An explicit ``language`` decides; without one, text that is mostly Cyrillic or whose
    function words are mostly French/German is treated as non-English. Empty text keeps
    the rule score (0).
    """
    text = _lead_text(analysis)
    if not text.strip():
        return False  # nothing to read: the rule score (0) stands
    if language:
        return _language_code(language) == "en"
    if _cyrillic_share(text) > 0.3:
        return False
    words = _WORD.findall(text)
    english = sum(1 for w in words if w in _EN_FUNCTION_WORDS)
    other = sum(1 for w in words if w in _OTHER_FUNCTION_WORDS)
    return english >= other


_CYRILLIC_LANGUAGES = frozenset({"uk", "ru"})
"""Languages the Cyrillic stage was trained and measured on (``ml_dev`` / ``ml_test``)."""


def _cyrillic_applies(language: str | None, analysis: RuleAnalysis) -> bool:
    """Ukrainian and Russian text goes to the Cyrillic learned stage.

    An explicit ``language`` decides (other Cyrillic languages such as Bulgarian keep the
    rules: the stage has never seen them); without one, text whose letters are mostly
    Cyrillic is taken to be Ukrainian or Russian.
    """
    text = _lead_text(analysis)
    if not text.strip():
        return False
    if language:
        return _language_code(language) in _CYRILLIC_LANGUAGES
    return _cyrillic_share(text) > 0.5


def model_features(analysis: RuleAnalysis) -> dict[str, float]:
    """Features of the learned second stage, computed from the rule analysis.

    * ``r:*`` - the rule layer's internal scores (points, factors, per-topic points, ...);
    * ``lx:*`` - which lexicon terms matched (``lx:<category>:<pattern>``), title apart;
    * ``t:`` / ``w:`` / ``b2:`` - casefolded words of the title, words of title + lead
      (first ``MODEL_BODY_CHARS`` body characters) and adjacent word pairs of title + lead.

    Shared by the worker and ``eval/train_classifier.py`` so training and inference agree.
    """
    f = _rule_lexicon_features(analysis)
    title_words = _WORD.findall(analysis.title)
    lead_words = _WORD.findall(analysis.body[:MODEL_BODY_CHARS])
    for w in title_words:
        f["t:" + w] = 1.0
    for w in title_words + lead_words:
        f["w:" + w] = 1.0
    for seq in (title_words, lead_words):
        for w1, w2 in pairwise(seq):
            f["b2:" + w1 + " " + w2] = 1.0
    return f


def _rule_lexicon_features(analysis: RuleAnalysis) -> dict[str, float]:
    """The ``r:`` and ``lx:`` features, common to both learned stages."""
    a = analysis
    f: dict[str, float] = {
        "r:score": a.score,
        "r:logit": _logit(a.score) / 4.0,
        "r:rule_positive": 1.0 if a.score >= THRESHOLD else 0.0,
        "r:u": a.u,
        "r:s": a.s,
        "r:other_factor": a.other_factor,
        "r:off_factor": a.off_factor,
        "r:ukraine_points": math.log1p(a.ukraine_points),
        "r:security_points": math.log1p(a.security_points),
        "r:other_points": math.log1p(a.other_points),
        "r:off_points": math.log1p(a.off_points),
        "r:cooccurrence": min(a.cooccurrences, COOCCURRENCE_MAX) / COOCCURRENCE_MAX,
        "r:title_ukraine": 1.0 if a.ukraine[0] else 0.0,
        "r:title_security": 1.0
        if a.security[0] or any(ht for ht, _ in a.topic_hits.values())
        else 0.0,
        "r:title_other": 1.0 if a.other[0] else 0.0,
        "r:no_ukraine": 0.0 if a.ukraine[0] or a.ukraine[1] else 1.0,
        "r:long_body": min(math.log1p(a.n_words) / 8.0, 1.0),
        "r:title_score": _title_only_score(a),
        "r:us": a.u * a.s,
    }
    for name, points in a.topic_points.items():
        if points:
            f["r:topic:" + name] = math.log1p(points)
    lead = a.body[:MODEL_BODY_CHARS]
    for category, (ht, hb) in (
        ("ctx", (_CONTEXT.find(a.title), _CONTEXT.find(lead))),
        ("ukr", a.ukraine),
        ("sec", a.security),
        ("oth", a.other),
        ("off", a.off_topic),
        *((name, hits) for name, hits in a.topic_hits.items()),
    ):
        names = _TERM_NAMES[category]
        for term in {names[h.term] for h in ht}:
            f[f"lx:{category}:t:{term}"] = 1.0
        for term in {names[h.term] for h in ht} | {
            names[h.term] for h in hb if h.start < MODEL_BODY_CHARS
        }:
            f[f"lx:{category}:{term}"] = 1.0
    return f


_STEM_CHARS = 5
"""Cyrillic words are cut to this many letters: Ukrainian and Russian inflect every noun
and verb (``ракета/ракети/ракетою``), and a five-letter prefix is the cheapest stemmer that
keeps the word's meaning while folding its endings together."""


def _stems(text: str) -> list[str]:
    return [
        w.replace("ё", "е").replace("'", "")[:_STEM_CHARS]
        for w in _WORD.findall(text)
        if len(w) > 2
    ]


def cyrillic_features(analysis: RuleAnalysis) -> dict[str, float]:
    """Features of the Ukrainian/Russian learned stage: the rule scores and lexicon matches
    of :func:`model_features` plus word stems of the title (``ts:``) and title + lead
    (``s:``). Shared by the worker and ``eval/train_cyrillic.py``."""
    f = _rule_lexicon_features(analysis)
    title_stems = _stems(analysis.title)
    for stem in title_stems:
        f["ts:" + stem] = 1.0
    for stem in title_stems + _stems(analysis.body[:MODEL_BODY_CHARS]):
        f["s:" + stem] = 1.0
    return f


def _model_logit(
    features: dict[str, float], weights: dict[str, float], bias: float
) -> tuple[float, list[tuple[float, str]]]:
    """Linear score of a shipped model and each feature's contribution."""
    z = bias
    contributions: list[tuple[float, str]] = []
    for name, value in features.items():
        w = weights.get(name)
        if w is not None and value:
            z += w * value
            contributions.append((w * value, name))
    return z, contributions


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _linear_verdict(
    analysis: RuleAnalysis, features: dict[str, float], weights: dict[str, float], bias: float
) -> tuple[float, list[str]]:
    """A shipped linear stage's calibrated score (rounded as stored) and its evidence:
    the rule score, then the features that moved the score most."""
    z, contributions = _model_logit(features, weights, bias)
    top = sorted(contributions, key=lambda c: (-abs(c[0]), c[1]))[:MAX_MODEL_EVIDENCE]
    evidence = [f"rule_score={analysis.score:.4f}"] + [f"{name} {c:+.2f}" for c, name in top]
    return round(_sigmoid(z), 4), evidence


BODY_WINDOWS = 5
"""Body windows after the lead that the learned stage also reads (full articles only)."""
BODY_WINDOW_MIN_CHARS = 300
"""A shorter last window is ignored: a few trailing words are no paragraph."""


def _best_body_window(title: str, body: str, threshold: float) -> tuple[int, float] | None:
    """The first body window (title + ``MODEL_BODY_CHARS`` characters after the lead) that
    the learned stage accepts, as ``(index, score)``; ``None`` when none does.

    Why: the learned stage reads only title + lead, so a full article whose lead is scene-
    setting colour ("The snow had not stopped for three days ...") and whose subject comes
    in its third paragraph is missed; 2014 full articles were found 14 of 22. Reading a few
    further windows with the same title finds them (17 of 22) at the cost of at most
    ``BODY_WINDOWS`` extra model calls, only for long English bodies the lead rejected.
    """
    width = MODEL_BODY_CHARS
    for index in range(1, BODY_WINDOWS + 1):
        segment = body[index * width : (index + 1) * width]
        if len(segment) < BODY_WINDOW_MIN_CHARS:
            return None
        window = analyse(title, segment)
        score, _ = _linear_verdict(window, model_features(window), _model.WEIGHTS, _model.BIAS)
        if score >= threshold:
            return index, score
    return None


# --- public API ----------------------------------------------------------------------------


def classify(
    *, title: str, body: str, language: str | None = None, method: str = "hybrid"
) -> Classification:
    """Classify one article as Ukraine-security (or not), with score, topics and evidence.

    English text (``language`` "en" or unset and the text looks English) is decided by the
    learned second stage over the rule features and words; Ukrainian and Russian text
    (declared, or mostly Cyrillic) by the Cyrillic stage; other languages by the rule score
    alone, because neither stage has seen them. All lexicons always run:
    feeds mislabel languages and titles often mix scripts.

    ``method="neighbours"`` (the optional extra, see ``worker.neighbours``) decides English
    text by the rule/lexicon features plus the article's nearest labelled neighbours in
    sentence-embedding space instead; it raises
    :class:`worker.neighbours.NeighboursUnavailableError` when the extra is not installed.
    """
    return _classify(title, body, language, allow_model=True, method=method)


def classify_rules_only(*, title: str, body: str) -> Classification:
    """The rule layer's verdict alone (for evaluation and comparison; not used by the worker)."""
    return _classify(title, body, None, allow_model=False)


def _classify(
    title: str,
    body: str,
    language: str | None,
    *,
    allow_model: bool,
    method: str = "hybrid",
) -> Classification:
    version = classifier_version(method)  # also rejects an unknown method before any work
    a = analyse(title, body)
    use_model = allow_model and bool(_model.WEIGHTS) and _model_applies(language, a)
    model_evidence: list[str] = []
    neighbour_evidence: list[str] = []
    use_cyrillic = allow_model and not use_model and _cyrillic_applies(language, a)
    if use_cyrillic:
        cyr = _cyrillic.shipped()
        score, model_evidence = _linear_verdict(a, cyrillic_features(a), cyr.weights, cyr.bias)
        is_security = score >= cyr.threshold
    elif use_model:
        features = model_features(a)
        weights, bias, threshold = _model.WEIGHTS, _model.BIAS, _model.THRESHOLD
        if method == "neighbours":
            from . import classifier_neighbours_model as nm
            from . import neighbours

            nn_features, neighbour_evidence = neighbours.stage().features(
                a.title, a.body, k=nm.K_NEIGHBOURS
            )
            features |= nn_features
            weights, bias, threshold = nm.WEIGHTS, nm.BIAS, nm.THRESHOLD
        score, model_evidence = _linear_verdict(a, features, weights, bias)
        is_security = score >= threshold
        if not is_security and method == "hybrid":
            window = _best_body_window(title, body, threshold)
            if window is not None:
                index, score = window
                is_security = True
                model_evidence.insert(0, f"body_window={index} score={score:.4f}")
    else:
        score = a.score
        is_security = score >= THRESHOLD

    topics: tuple[str, ...] = ()
    if is_security:
        best = max(a.topic_points.values(), default=0.0)
        ranked = [
            (p, name)
            for name, p in a.topic_points.items()
            if p >= TOPIC_MIN_POINTS and p >= TOPIC_RELATIVE_MIN * best
        ]
        if not ranked and best > 0:
            # The model can accept terse items below the rules' topic floor: report the
            # strongest topic that matched at all rather than none.
            ranked = [(p, name) for name, p in a.topic_points.items() if p == best]
        topics = tuple(name for _, name in sorted(ranked, key=lambda x: (-x[0], x[1])))

    ukr_t, ukr_b = a.ukraine
    sec_t, sec_b = a.security
    oth_t, oth_b = a.other
    off_t, off_b = a.off_topic
    evidence: dict[str, list[str]] = {
        "ukraine_context": _distinct(ukr_t + ukr_b),
        "security_context": _distinct(
            sec_t + sec_b + [h for ht, hb in a.topic_hits.values() for h in ht + hb]
        ),
    }
    for name in TOPICS:
        ht, hb = a.topic_hits[name]
        if ht or hb:
            evidence[name] = _distinct(ht + hb)
    if a.snippets:
        evidence["snippets"] = a.snippets
    if oth_t or oth_b:
        evidence["other_conflict"] = _distinct(oth_t + oth_b)
    if off_t or off_b:
        evidence["off_topic"] = _distinct(off_t + off_b)
    if model_evidence:
        evidence["model"] = model_evidence
    if neighbour_evidence:
        evidence["neighbours"] = neighbour_evidence

    return Classification(
        is_ukraine_security=is_security,
        score=score,
        topics=topics,
        evidence=evidence,
        version=version,
    )
