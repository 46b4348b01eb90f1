"""Features of the learned stages, computed from the rule layer's analysis of an article.

Shared by the worker and the trainers (``eval/train_classifier.py``,
``eval/train_cyrillic.py``, ``eval/train_neighbours.py``): a model is trained on exactly
the features the worker computes, so training and inference cannot disagree. Changing
anything here changes what the shipped weights mean: retrain, and bump the versions.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise

from . import lexicon as lex
from .matching import Matcher
from .rules import COOCCURRENCE_MAX, THRESHOLD, RuleAnalysis, title_only_score
from .topics import TOPIC_TERMS, TOPICS

MODEL_BODY_CHARS = 1_000
"""Body prefix whose words feed the learned stages (the lead carries the subject)."""
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_CONTEXT = Matcher(lex.MODEL_CONTEXT)
_TERM_NAMES: dict[str, list[str]] = {
    "ctx": [pattern for pattern, _ in lex.MODEL_CONTEXT],
    "ukr": [pattern for pattern, _ in lex.UKRAINE],
    "sec": [pattern for pattern, _ in lex.SECURITY],
    "oth": [pattern for pattern, _ in lex.OTHER_CONFLICT],
    "off": [pattern for pattern, _ in lex.OFF_TOPIC],
    **{name: [pattern for pattern, _ in TOPIC_TERMS[name]] for name in TOPICS},
}
"""Lexicon patterns by category and term index: the names of the model's ``lx:`` features."""


def _logit(p: float) -> float:
    p = min(max(p, 1e-3), 1.0 - 1e-3)
    return math.log(p / (1.0 - p))


def model_features(analysis: RuleAnalysis) -> dict[str, float]:
    """Features of the English learned stage (and, with ``nn:`` added, the neighbour stage).

    * ``r:*`` - the rule layer's internal scores (points, factors, per-topic points, ...);
    * ``lx:*`` - which lexicon terms matched (``lx:<category>:<pattern>``), title apart;
    * ``t:`` / ``w:`` / ``b2:`` - casefolded words of the title, words of title + lead
      (first ``MODEL_BODY_CHARS`` body characters) and adjacent word pairs of title + lead.

    Shared by the worker and ``eval/train_classifier.py`` so training and inference agree.
    """
    f = _rule_lexicon_features(analysis)
    title_words = WORD.findall(analysis.title)
    lead_words = WORD.findall(analysis.body[:MODEL_BODY_CHARS])
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
        "r:title_score": title_only_score(a),
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


def _long_words(text: str) -> list[str]:
    """Words of three letters or more: what stems and skeletons are made of."""
    return [w for w in WORD.findall(text) if len(w) > 2]


def _stems(words: list[str]) -> list[str]:
    return [w.replace("ё", "е").replace("'", "")[:_STEM_CHARS] for w in words]


_SKELETON_CONSONANTS = 4
"""Consonants kept of a word's skeleton (see :func:`consonant_skeleton`)."""
_NOT_SKELETON = frozenset("аеёиіїоуыэюяєйьъ'’ʼ")
"""Vowels, й, the soft and hard signs and apostrophes: where Ukrainian and Russian cognates
differ (``обстріл``/``обстрел``, ``перемир'я``/``перемирие``, ``санкції``/``санкции``)."""


def consonant_skeleton(word: str) -> str:
    """A Cyrillic word's first consonants, with vowels, й, signs and apostrophes dropped, ґ
    read as г and doubled letters collapsed: ``обстріл`` and ``обстрелы`` both give
    ``бстр``, ``окупанти`` and ``оккупанты`` both ``кпнт``.

    Why: the Cyrillic stage learns from 1,500 labelled Russian posts and only 47 Ukrainian
    leads (every Ukrainian item in the shared data is labelled already). Ukrainian and
    Russian cognates mostly differ in their vowels and doubled consonants, so a word's
    skeleton is a feature both languages share and what the stage learns from Russian also
    reads Ukrainian (eval/labels/CYRILLIC2_PLAN.md has the measurements).
    """
    out: list[str] = []
    for ch in word.lower():
        if ch in _NOT_SKELETON:
            continue
        if ch == "ґ":
            ch = "г"
        if out and out[-1] == ch:
            continue
        out.append(ch)
        if len(out) == _SKELETON_CONSONANTS:
            break
    return "".join(out)


def _skeletons(words: list[str]) -> list[str]:
    skeletons = (consonant_skeleton(w) for w in words)
    return [s for s in skeletons if len(s) > 1]


def cyrillic_features(analysis: RuleAnalysis) -> dict[str, float]:
    """Features of the Ukrainian/Russian learned stage: the rule scores and lexicon matches
    of :func:`model_features` plus word stems (``ts:`` of the title, ``s:`` of title + lead)
    and consonant skeletons (``tk:``, ``k:``, shared by Ukrainian and Russian cognates).
    Shared by the worker and ``eval/train_cyrillic.py``; the shipped weights use only the
    groups its cross-validation chose."""
    f = _rule_lexicon_features(analysis)
    # Each text is split into words once, for its stems and its skeletons.
    title_words = _long_words(analysis.title)
    lead_words = _long_words(analysis.body[:MODEL_BODY_CHARS])
    title_stems = _stems(title_words)
    for stem in title_stems:
        f["ts:" + stem] = 1.0
    for stem in title_stems + _stems(lead_words):
        f["s:" + stem] = 1.0
    title_skeletons = _skeletons(title_words)
    for skeleton in title_skeletons:
        f["tk:" + skeleton] = 1.0
    for skeleton in title_skeletons + _skeletons(lead_words):
        f["k:" + skeleton] = 1.0
    return f
