"""The distilled English stage: a small wide-and-deep network whose forward pass is numpy.

Why: the optional neighbour method (MiniLM + nearest labelled stories) finds more English
Ukraine-security stories than the linear English stage at the same precision, but needs
torch. ``eval/train_distil.py`` trains this student on the dev labels plus the neighbour
method's soft scores on unlabelled feed items of the 2023 dump, so the default install gets
part of that recall with no torch at run time. It reads the same features as the linear
stage (``features.model_features``: rule internals, lexicon terms, words), so topics and
evidence are unchanged; a full article it rejects still gets the linear stage's reading
(``learned.full_article_second_look``).

The score is ``sigmoid(bias + x . linear + out . relu(hidden_bias + x @ hidden))`` over the
article's sparse features ``x`` (calibration folded in by the trainer). The weights are a
data file (``worker/data/classifier_english_student.json``): feature names, then the arrays
as base64 float32, with a SHA-256 over everything that decides a classification, verified
at load like the other stages' files (``weights.ModelFileError`` on a damaged file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .weights import DATA_DIR, ModelFileError

STUDENT_PATH = DATA_DIR / "classifier_english_student.json"
ARRAYS = ("linear", "hidden", "hidden_bias", "out")


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _digest(features: list[str], arrays: dict[str, str], bias: float, threshold: float) -> str:
    decisive = {"features": features, "arrays": arrays, "bias": bias, "threshold": threshold}
    canonical = json.dumps(decisive, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StudentModel:
    """A loaded student: feature index, arrays, bias and decision threshold."""

    vocab: dict[str, int]
    linear: np.ndarray
    """Shape (n_features,): the wide (linear) part."""
    hidden: np.ndarray
    """Shape (n_features, n_hidden): the first layer of the deep part."""
    hidden_bias: np.ndarray
    out: np.ndarray
    bias: float
    threshold: float

    def logit(self, features: dict[str, float]) -> tuple[float, list[tuple[float, str]]]:
        """Calibrated logit of one article and its wide part's contribution per feature
        (the network's hidden part is reported as one ``mlp:hidden`` contribution)."""
        names = [k for k, v in features.items() if v and k in self.vocab]
        idx = np.fromiter((self.vocab[k] for k in names), dtype=np.int64, count=len(names))
        val = np.fromiter((features[k] for k in names), dtype=np.float64, count=len(names))
        wide = val * self.linear[idx]
        h = np.maximum(self.hidden_bias + val @ self.hidden[idx], 0.0)
        deep = float(h @ self.out)
        contributions = [(float(c), name) for c, name in zip(wide, names, strict=True)]
        contributions.append((deep, "mlp:hidden"))
        return self.bias + float(wide.sum()) + deep, contributions

    def probability(self, features: dict[str, float]) -> float:
        z, _ = self.logit(features)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def write(
    path: Path,
    *,
    features: list[str],
    arrays: dict[str, np.ndarray],
    bias: float,
    threshold: float,
    provenance: dict[str, object],
) -> None:
    """Write a student file as :func:`load` reads it (for ``eval/train_distil.py``)."""
    encoded = {name: _encode(arrays[name]) for name in ARRAYS}
    doc: dict[str, object] = {
        **provenance,
        "n_hidden": int(arrays["out"].shape[0]),
        "bias": bias,
        "threshold": threshold,
        "sha256": _digest(features, encoded, bias, threshold),
        "features": features,
        "arrays": encoded,
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", "utf-8")


def load(path: Path = STUDENT_PATH) -> StudentModel:
    """Read and verify a student file."""
    try:
        doc = json.loads(path.read_text("utf-8"))
        features = [str(name) for name in doc["features"]]
        encoded = {name: str(doc["arrays"][name]) for name in ARRAYS}
        bias, threshold = float(doc["bias"]), float(doc["threshold"])
        n_hidden = int(doc["n_hidden"])
        digest = str(doc["sha256"])
        raw = {
            name: np.frombuffer(base64.b64decode(encoded[name], validate=True), dtype="<f4")
            for name in ARRAYS
        }
        hidden = raw["hidden"].reshape(len(features), n_hidden)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: unreadable student weights ({exc})") from exc
    if _digest(features, encoded, bias, threshold) != digest:
        raise ModelFileError(f"{path}: weights do not match their sha256; regenerate the file")
    if raw["linear"].shape != (len(features),) or raw["out"].shape != (n_hidden,):
        raise ModelFileError(f"{path}: array shapes do not match the feature list")
    return StudentModel(
        vocab={name: i for i, name in enumerate(features)},
        linear=raw["linear"].astype(np.float64),
        hidden=hidden.astype(np.float64),
        hidden_bias=raw["hidden_bias"].astype(np.float64),
        out=raw["out"].astype(np.float64),
        bias=bias,
        threshold=threshold,
    )


@cache
def student_model() -> StudentModel:
    """The distilled English stage, loaded once per process."""
    return load(STUDENT_PATH)
