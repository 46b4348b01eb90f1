"""Scoring with a shipped linear stage, and the body windows of long English articles.

Every learned stage (English, Ukrainian/Russian, neighbours) is a logistic regression whose
calibration the trainer has folded into its weights, so a probability is
``sigmoid(bias + sum(weight * value))`` and the worker needs neither scikit-learn nor numpy
for it. The features that moved the score most are the decision's evidence.
"""

from __future__ import annotations

import math

from .features import MODEL_BODY_CHARS, model_features
from .rules import RuleAnalysis, analyse
from .student import StudentModel
from .weights import LinearModel

MAX_MODEL_EVIDENCE = 8
"""Top contributing model features listed in ``evidence["model"]``."""


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


def linear_verdict(
    analysis: RuleAnalysis, features: dict[str, float], model: LinearModel
) -> tuple[float, list[str]]:
    """A shipped linear stage's calibrated score (rounded as stored) and its evidence:
    the rule score, then the features that moved the score most."""
    return _verdict(analysis, *_model_logit(features, model.weights, model.bias))


def student_verdict(
    analysis: RuleAnalysis, features: dict[str, float], model: StudentModel
) -> tuple[float, list[str]]:
    """The distilled English stage's calibrated score (rounded as stored) and its evidence,
    in the linear stages' format (the network's hidden units count as ``mlp:hidden``)."""
    return _verdict(analysis, *model.logit(features))


def _verdict(
    analysis: RuleAnalysis, z: float, contributions: list[tuple[float, str]]
) -> tuple[float, list[str]]:
    """Score (rounded as stored) and evidence from a stage's logit and contributions: the
    rule score, then the features that moved the score most."""
    top = sorted(contributions, key=lambda c: (-abs(c[0]), c[1]))[:MAX_MODEL_EVIDENCE]
    evidence = [f"rule_score={analysis.score:.4f}"] + [f"{name} {c:+.2f}" for c, name in top]
    return round(_sigmoid(z), 4), evidence


BODY_WINDOWS = 5
"""Body windows after the lead that the learned stage also reads (full articles only)."""
BODY_WINDOW_MIN_CHARS = 300
"""A shorter last window is ignored: a few trailing words are no paragraph."""


def is_full_article(body: str) -> bool:
    """Whether ``body`` reaches past the lead into at least one body window (a full article,
    not a feed snippet): only then do the body windows and the linear floor apply."""
    return len(body) >= MODEL_BODY_CHARS + BODY_WINDOW_MIN_CHARS


def full_article_second_look(
    analysis: RuleAnalysis,
    features: dict[str, float],
    title: str,
    body: str,
    model: LinearModel,
) -> tuple[str, float] | None:
    """For a full article the English stage rejected: the linear stage's reading of the
    lead, then of the body windows, as ``(evidence, score)``; ``None`` when neither accepts.

    Why the linear stage: since 12.8 the lead is decided by the distilled student, which was
    trained and validated on feed snippets only. On full articles the linear stage (12.4's)
    stays a floor, so their recall does not fall below 12.4's (docs/classifier.md has the
    figures, and says that the full-article sets were seen when this was decided).
    """
    if not is_full_article(body):
        return None
    score, _ = linear_verdict(analysis, features, model)
    if score >= model.threshold:
        return f"lead_linear score={score:.4f}", score
    window = best_body_window(title, body, model)
    if window is None:
        return None
    index, score = window
    return f"body_window={index} score={score:.4f}", score


def best_body_window(title: str, body: str, model: LinearModel) -> tuple[int, float] | None:
    """The first body window (title + ``MODEL_BODY_CHARS`` characters after the lead) that
    the learned stage accepts, as ``(index, score)``; ``None`` when none does.

    Why: the learned stage reads only title + lead, so a full article whose lead is scene-
    setting colour ("The snow had not stopped for three days ...") and whose subject comes
    in its third paragraph is missed. Reading a few further windows with the same title
    finds such articles at the cost of at most ``BODY_WINDOWS`` extra model calls, only
    for long English bodies the lead rejected (docs/classifier.md has the figures).
    """
    width = MODEL_BODY_CHARS
    for index in range(1, BODY_WINDOWS + 1):
        segment = body[index * width : (index + 1) * width]
        if len(segment) < BODY_WINDOW_MIN_CHARS:
            return None
        window = analyse(title, segment)
        score, _ = linear_verdict(window, model_features(window), model)
        if score >= model.threshold:
            return index, score
    return None
