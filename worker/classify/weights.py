"""The Ukrainian/Russian learned stage's weights: a data file, loaded and checked once.

Why a separate stage: the English model's word features mean nothing in Cyrillic text, and
before it Ukrainian and Russian items were decided by the rule layer alone (recall 0.46 on
the Russian dev items). ``eval/train_cyrillic.py`` fits a logistic regression over the rule
scores, lexicon matches and word stems (``worker.classify.features.cyrillic_features``) on the
``ml_dev`` labels only and writes ``worker/data/classifier_cyrillic.json``. The file carries
the SHA-256 of its own weights so a truncated or hand-edited file fails loudly at load,
never as silently different classifications.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PATH = Path(__file__).parent.parent / "data" / "classifier_cyrillic.json"


class ModelFileError(RuntimeError):
    """The shipped weights file is missing, malformed or does not match its checksum."""


def weights_digest(weights: dict[str, float], bias: float, threshold: float) -> str:
    """SHA-256 over a canonical serialisation of what decides a classification."""
    canonical = json.dumps(
        {"weights": weights, "bias": bias, "threshold": threshold},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CyrillicModel:
    weights: dict[str, float]
    bias: float
    threshold: float
    trained_on: str


def load(path: Path = PATH) -> CyrillicModel:
    """Read and verify a weights file."""
    try:
        doc = json.loads(path.read_text("utf-8"))
        weights = {str(k): float(v) for k, v in doc["weights"].items()}
        bias, threshold = float(doc["bias"]), float(doc["threshold"])
        digest = str(doc["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: unreadable classifier weights ({exc})") from exc
    if weights_digest(weights, bias, threshold) != digest:
        raise ModelFileError(f"{path}: weights do not match their sha256; regenerate the file")
    return CyrillicModel(weights, bias, threshold, str(doc.get("trained_on", "")))


@cache
def shipped() -> CyrillicModel:
    """The packaged model, loaded once per process (the worker's warm-up calls it pre-fork)."""
    return load()
