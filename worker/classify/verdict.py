"""The classifier's verdict: which stage decides an article, and what is reported.

Every article is analysed by the rule layer; then English text is decided by the English
learned stage (or, with ``method="neighbours"``, the neighbour stage), Ukrainian and Russian
text by the Cyrillic stage, and any other language by the rule score, because no learned
stage has seen it. Topics and term evidence always come from the rule layer, whichever
stage decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .features import cyrillic_features, model_features
from .language import cyrillic_applies, english_applies
from .learned import full_article_second_look, linear_verdict, student_verdict
from .rules import (
    THRESHOLD,
    TOPIC_MIN_POINTS,
    TOPIC_RELATIVE_MIN,
    RuleAnalysis,
    analyse,
    distinct_terms,
)
from .student import student_model
from .topics import TOPICS
from .weights import cyrillic_model, english_model, neighbours_model

CLASSIFIER_VERSION: str = "hybrid-2026.12.9"
"""Bump whenever rules, weights or term tables change, then run ``ingest reclassify``."""
NEIGHBOURS_VERSION: str = "neighbours-2026.12.7"
"""Version of the optional neighbour method (``INGEST_CLASSIFIER=neighbours``): the hybrid
rule layer and lexicon plus the nearest labelled neighbours in sentence-embedding space
(``worker.classify.neighbours``). Bump with its weights or reference set."""
METHODS: tuple[str, ...] = ("hybrid", "neighbours")
"""Classification methods an operator can choose (``INGEST_CLASSIFIER``)."""


def classifier_version(method: str = "hybrid") -> str:
    """The ``classifier_version`` that ``method`` writes (what ``reclassify`` compares)."""
    if method not in METHODS:
        raise ValueError(f"unknown classifier method {method!r}; choose one of {METHODS}")
    return NEIGHBOURS_VERSION if method == "neighbours" else CLASSIFIER_VERSION


def load_models(method: str = "hybrid") -> None:
    """Load and verify every weights file ``method`` reads, or raise
    :class:`worker.classify.weights.ModelFileError`.

    The worker's warm-up calls it before the pool forks: a damaged file then stops the
    worker at start instead of failing every article, and the children share the weights.
    """
    classifier_version(method)  # rejects an unknown method
    english_model()
    student_model()
    cyrillic_model()
    if method == "neighbours":
        neighbours_model()


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict for one article, as stored on the article row."""

    is_ukraine_security: bool
    score: float
    topics: tuple[str, ...]
    evidence: dict[str, list[str]] = field(hash=False)
    version: str


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

    ``method="neighbours"`` (the optional extra, see ``worker.classify.neighbours``) decides
    English text by the rule/lexicon features plus the article's nearest labelled neighbours
    in sentence-embedding space instead; it raises
    :class:`worker.classify.neighbours.NeighboursUnavailableError` when the extra is not
    installed.
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
    use_model = allow_model and bool(english_model().weights) and english_applies(language, a)
    model_evidence: list[str] = []
    neighbour_evidence: list[str] = []
    use_cyrillic = allow_model and not use_model and cyrillic_applies(language, a)
    if use_cyrillic:
        model = cyrillic_model()
        score, model_evidence = linear_verdict(a, cyrillic_features(a), model)
        is_security = score >= model.threshold
    elif use_model:
        features = model_features(a)
        if method == "neighbours":
            from . import neighbours

            model = neighbours_model()
            nn_features, neighbour_evidence = neighbours.stage().features(
                a.title, a.body, k=model.params["k"]
            )
            features |= nn_features
            score, model_evidence = linear_verdict(a, features, model)
            is_security = score >= model.threshold
        else:  # since 12.8 the distilled stage (worker.classify.student) decides English text
            student = student_model()
            score, model_evidence = student_verdict(a, features, student)
            is_security = score >= student.threshold
        if not is_security and method == "hybrid":
            second = full_article_second_look(a, features, title, body, english_model())
            if second is not None:
                tag, score = second
                is_security = True
                model_evidence.insert(0, tag)
    else:
        score = a.score
        is_security = score >= THRESHOLD

    return Classification(
        is_ukraine_security=is_security,
        score=score,
        topics=_topics(a) if is_security else (),
        evidence=_evidence(a, model_evidence, neighbour_evidence),
        version=version,
    )


def _topics(a: RuleAnalysis) -> tuple[str, ...]:
    """The topics of a Ukraine-security article, strongest first."""
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
    return tuple(name for _, name in sorted(ranked, key=lambda x: (-x[0], x[1])))


def _evidence(
    a: RuleAnalysis, model_evidence: list[str], neighbour_evidence: list[str]
) -> dict[str, list[str]]:
    """The matched terms by category, snippets and the deciding stage's features."""
    ukr_t, ukr_b = a.ukraine
    sec_t, sec_b = a.security
    oth_t, oth_b = a.other
    off_t, off_b = a.off_topic
    evidence: dict[str, list[str]] = {
        "ukraine_context": distinct_terms(ukr_t + ukr_b),
        "security_context": distinct_terms(
            sec_t + sec_b + [h for ht, hb in a.topic_hits.values() for h in ht + hb]
        ),
    }
    for name in TOPICS:
        ht, hb = a.topic_hits[name]
        if ht or hb:
            evidence[name] = distinct_terms(ht + hb)
    if a.snippets:
        evidence["snippets"] = a.snippets
    if oth_t or oth_b:
        evidence["other_conflict"] = distinct_terms(oth_t + oth_b)
    if off_t or off_b:
        evidence["off_topic"] = distinct_terms(off_t + off_b)
    if model_evidence:
        evidence["model"] = model_evidence
    if neighbour_evidence:
        evidence["neighbours"] = neighbour_evidence
    return evidence
