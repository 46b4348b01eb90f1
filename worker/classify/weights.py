"""The learned stages' weights: generated data files, each loaded and verified once.

Why data files: the trainers (``eval/train_classifier.py``, ``eval/train_cyrillic.py``,
``eval/train_neighbours.py``) generate thousands of weights; as data they are read by one
loader instead of being Python modules of thousands of lines that linters, type checkers
and reviewers have to wade through. Each file carries the SHA-256 of what decides a
classification (weights, bias, threshold and parameters such as the neighbour stage's
``k``), so a truncated or hand-edited file fails loudly at load, never as silently
different classifications. Its provenance (configuration, training items, cross-validated
precision and recall) travels in the same file; nothing reads it at run time.

A stage's probability is ``sigmoid(bias + sum(weights[f] * value of f))``, already
calibrated by its trainer; an article is Ukraine-security when it is >= ``threshold``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent.parent / "data"
ENGLISH_PATH = DATA_DIR / "classifier_english.json"
"""The English stage, trained on the dev split by ``eval/train_classifier.py``."""
CYRILLIC_PATH = DATA_DIR / "classifier_cyrillic.json"
"""The Ukrainian/Russian stage, trained on the ml_dev split by ``eval/train_cyrillic.py``.

Why a stage of its own: the English stage's word features mean nothing in Cyrillic text,
and the rule layer alone misses most Russian-side war reports, which rarely name Ukraine."""
NEIGHBOURS_PATH = DATA_DIR / "classifier_neighbours.json"
"""The optional neighbour stage, trained on the dev split by ``eval/train_neighbours.py``
(its reference set is ``classifier_neighbours.npz``); parameter ``k``: neighbours that vote."""


class ModelFileError(RuntimeError):
    """A shipped weights file is missing, malformed or does not match its checksum."""


def weights_digest(
    weights: Mapping[str, float],
    bias: float,
    threshold: float,
    params: Mapping[str, int] | None = None,
) -> str:
    """SHA-256 over a canonical serialisation of what decides a classification."""
    decisive: dict[str, object] = {"weights": dict(weights), "bias": bias, "threshold": threshold}
    if params:  # absent from a stage without parameters, so its digest omits them
        decisive["params"] = dict(params)
    canonical = json.dumps(decisive, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LinearModel:
    """A shipped linear stage."""

    weights: dict[str, float]
    bias: float
    threshold: float
    params: dict[str, int]
    """Further settings of the stage (the neighbour stage's ``k``)."""
    trained_on: str


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"parameter {value!r} is not an integer")
    return value


def load(path: Path, *, params: tuple[str, ...] = ()) -> LinearModel:
    """Read and verify a weights file; ``params`` names the parameters it must have."""
    try:
        doc = json.loads(path.read_text("utf-8"))
        weights = {str(k): float(v) for k, v in doc["weights"].items()}
        bias, threshold = float(doc["bias"]), float(doc["threshold"])
        found = {str(k): _integer(v) for k, v in doc.get("params", {}).items()}
        digest = str(doc["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{path}: unreadable classifier weights ({exc})") from exc
    missing = [name for name in params if name not in found]
    if missing:
        raise ModelFileError(f"{path}: parameters {missing} missing; regenerate the file")
    if weights_digest(weights, bias, threshold, found) != digest:
        raise ModelFileError(f"{path}: weights do not match their sha256; regenerate the file")
    return LinearModel(weights, bias, threshold, found, str(doc.get("trained_on", "")))


def write(
    path: Path,
    *,
    weights: Mapping[str, float],
    bias: float,
    threshold: float,
    params: Mapping[str, int] | None = None,
    provenance: Mapping[str, object],
) -> None:
    """Write a weights file as :func:`load` reads it, checksum included (for the trainers).

    ``provenance`` (``trained_on``, ``config``, ``cv``, ...) comes first, the weights last,
    one per line, so a retrained file reads and diffs well.
    """
    doc: dict[str, object] = {**provenance, "bias": bias, "threshold": threshold}
    if params:
        doc["params"] = dict(params)
    doc["sha256"] = weights_digest(weights, bias, threshold, params)
    doc["weights"] = dict(weights)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", "utf-8")


@cache
def english_model() -> LinearModel:
    """The English stage, loaded once per process."""
    return load(ENGLISH_PATH)


@cache
def cyrillic_model() -> LinearModel:
    """The Ukrainian/Russian stage, loaded once per process."""
    return load(CYRILLIC_PATH)


@cache
def neighbours_model() -> LinearModel:
    """The optional neighbour stage, loaded once per process (only when it is used)."""
    return load(NEIGHBOURS_PATH, params=("k",))
