"""Train the English learned stage of ``worker.classify`` on the **dev** split only.

Run from the repository root (needs scikit-learn + numpy at dev time only; the worker
itself never imports them)::

    python -m eval.train_classifier [--data-dir PATH]
                                    [--output worker/data/classifier_english.json]
                                    [--report-only]

What it does, deterministically (fixed seeds, sorted output):

1. Loads the labelled items of the ``dev`` split (``eval/labels/``, including the extra
   feed items of ``rss_link_db_2023_extra.csv``); ``test`` items are never read into
   features, fitted or scored here.
2. Computes each item's features with ``worker.classify.model_features`` - the very code the
   worker runs - so training and inference cannot disagree.
3. Chooses the configuration (feature groups, L1/L2 penalty, C, non-rule value scale) by
   5-fold cross-validation repeated 8 times inside dev, folds stratified by (source, label).
   For each configuration the decision threshold is the one whose mean out-of-fold
   precision is >= ``TARGET_PRECISION`` with the highest mean out-of-fold recall; the
   configuration with the best such recall (then average precision, then F1) wins.
4. Calibrates the linear score with Platt scaling fitted on the pooled out-of-fold scores,
   refits the chosen configuration on all of dev, prunes it to at most ``MAX_FEATURES``
   non-zero weights, folds the calibration into weights and bias (so the worker computes
   ``probability = sigmoid(bias + sum(weight * value))``) and writes
   ``worker/data/classifier_english.json`` (weights, bias, threshold, their SHA-256 and the
   configuration and CV figures as provenance; ``worker.classify.weights`` reads it).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import RepeatedStratifiedKFold

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import DEFAULT_DATA_DIR, LABELS_DIR, Item, load_items  # noqa: E402
from worker.classify import analyse, model_features  # noqa: E402
from worker.classify import weights as shipped_weights  # noqa: E402

SEED = 20261102
N_SPLITS = 5
N_REPEATS = 8
TARGET_PRECISION = 0.95
MAX_FEATURES = 5_000
MIN_DF = 2
"""Word/lexicon features must occur in at least this many training items."""
OUTPUT = shipped_weights.ENGLISH_PATH


def training_items(data_dir: Path) -> list[Item]:
    """The dev items a model is trained on (never a ``test``, ``test2`` or external item)."""
    return [item for item in load_items(data_dir) if item.split == "dev"]


GROUPS = {
    "rules": ("r:",),
    "rules+ctx": ("r:", "lx:ctx:"),
    "rules+lex": ("r:", "lx:"),
    "rules+lex+words": ("r:", "lx:", "t:", "w:"),
    "rules+lex+words+bigrams": ("r:", "lx:", "t:", "w:", "b2:"),
}


@dataclass(frozen=True)
class Config:
    groups: str
    penalty: str
    c: float
    scale: float = 1.0
    """Value multiplier of the non-rule features: < 1 regularises them harder."""

    def describe(self) -> str:
        return f"{self.groups} {self.penalty} C={self.c:g} scale={self.scale:g}"


def configs() -> list[Config]:
    out: list[Config] = []
    for groups in GROUPS:
        for scale in (1.0,) if groups == "rules" else (0.3, 1.0):
            for c in (0.03, 0.1, 0.3, 1.0, 3.0):
                out.append(Config(groups, "l2", c, scale))
            out.append(Config(groups, "l1", 0.3, scale))
    return out


def select(features: dict[str, float], prefixes: Sequence[str]) -> dict[str, float]:
    return {k: v for k, v in features.items() if k.startswith(tuple(prefixes))}


@dataclass
class Linear:
    """A fitted, pruned linear model: score = bias + sum(weights[f] * value)."""

    weights: dict[str, float]
    bias: float

    def decision(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        w = self.weights
        return np.array(
            [self.bias + sum(w.get(k, 0.0) * v for k, v in row.items()) for row in rows]
        )


def fit(rows: Sequence[dict[str, float]], labels: np.ndarray, config: Config) -> Linear:
    """Fit one configuration on ``rows`` (vocabulary from these rows only), then prune."""
    prefixes = GROUPS[config.groups]
    selected = [select(r, prefixes) for r in rows]
    df: dict[str, int] = {}
    for r in selected:
        for k in r:
            df[k] = df.get(k, 0) + 1
    keep = {k for k, n in df.items() if k.startswith("r:") or n >= MIN_DF}
    selected = [
        {k: v if k.startswith("r:") else v * config.scale for k, v in r.items() if k in keep}
        for r in selected
    ]
    vec = DictVectorizer(sort=True)
    x = vec.fit_transform(selected)
    model = LogisticRegression(
        l1_ratio=1.0 if config.penalty == "l1" else 0.0,
        C=config.c,
        solver="liblinear",
        max_iter=5000,
        random_state=SEED,
    )
    x = sparse.csr_matrix(x)
    x.indices = x.indices.astype(np.int32)
    x.indptr = x.indptr.astype(np.int32)
    model.fit(x, labels)
    coef = model.coef_[0]
    names = vec.get_feature_names_out()
    order = np.argsort(-np.abs(coef), kind="stable")[:MAX_FEATURES]
    weights = {
        str(names[i]): float(coef[i]) * (1.0 if names[i].startswith("r:") else config.scale)
        for i in order
        if abs(coef[i]) >= 1e-4
    }
    return Linear(weights, float(model.intercept_[0]))


def platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Fit p = sigmoid(a * score + b) (almost unregularised logistic regression)."""
    lr = LogisticRegression(C=1e4, solver="lbfgs", max_iter=10_000)
    lr.fit(scores.reshape(-1, 1), labels)
    return float(lr.coef_[0][0]), float(lr.intercept_[0])


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass
class CvResult:
    config: Config
    oof: np.ndarray
    """Out-of-fold linear scores, shape (N_REPEATS, n)."""
    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5
    precision: float = 0.0
    recall: float = 0.0
    ap: float = 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def pr_at(
    probs: np.ndarray, labels: np.ndarray, threshold: float, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """Mean (weighted) precision and recall over repeats at one threshold."""
    w = np.ones(len(labels)) if weights is None else weights
    ps, rs = [], []
    for row in probs:
        pred = row >= threshold
        tp = float(np.sum(w[pred & (labels == 1)]))
        fp = float(np.sum(w[pred & (labels == 0)]))
        fn = float(np.sum(w[~pred & (labels == 1)]))
        ps.append(tp / (tp + fp) if tp + fp else 1.0)
        rs.append(tp / (tp + fn) if tp + fn else 1.0)
    return float(np.mean(ps)), float(np.mean(rs))


STRATIFIED_SOURCES = (
    "rss_link_db_2023_extra2",
    "rss_link_db_2023_extra3",
    "rss_link_db_2023_extra4",
)
"""Label files drawn 400/600/400/200 from the feed-flag strata (``eval/sample_extra.py``)."""


def design_weights(items: Sequence[Item], labels_dir: Path = LABELS_DIR) -> np.ndarray:
    """Item weights that give every feed-flag stratum of a sampled file the same total weight.

    Why: the test split's feed items are the 800-item file's four equal strata (``ukr+sec``,
    ``ukr_only``, ``sec_only``, ``other``), and so are the first 600 extras, but the 1,600
    items of ``rss_link_db_2023_extra2`` (and of ``extra3``) were drawn 400/600/400/200 to
    get more positives and hard negatives. Unweighted, they would tilt the precision that
    chooses the threshold towards the hard ``ukr_only`` stratum. Weights come from the
    sampling design, never from labels or the test split; each file is weighted on its own.
    """
    strata: dict[tuple[str, str], str] = {}
    for source in STRATIFIED_SOURCES:
        path = labels_dir / f"{source}.csv"
        if not path.exists():
            continue
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                strata[(source, row["id"])] = row["stratum"]
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        key = (item.source, item.id)
        if key in strata:
            counts[(item.source, strata[key])] = counts.get((item.source, strata[key]), 0) + 1
    out = np.ones(len(items))
    for source in STRATIFIED_SOURCES:
        per_file = {k: n for k, n in counts.items() if k[0] == source}
        if not per_file:
            continue
        per_stratum = sum(per_file.values()) / len(per_file)
        for i, item in enumerate(items):
            if item.source == source:
                out[i] = per_stratum / per_file[(source, strata[(source, item.id)])]
    return out


def choose_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    target: float = TARGET_PRECISION,
) -> tuple[float, float, float]:
    """Threshold with mean OOF precision >= target and the best recall (else best precision)."""
    best: tuple[float, float, float] | None = None
    fallback: tuple[float, float, float] = (0.5, 0.0, 0.0)
    for t in np.round(np.arange(0.20, 0.951, 0.01), 2):
        p, r = pr_at(probs, labels, float(t), weights)
        if p >= target and (best is None or r > best[2]):
            best = (float(t), p, r)
        if p > fallback[1]:
            fallback = (float(t), p, r)
    return best if best is not None else fallback


def cross_validate(
    rows: list[dict[str, float]],
    labels: np.ndarray,
    strata: list[str],
    config: Config,
    weights: np.ndarray | None = None,
    target: float = TARGET_PRECISION,
) -> CvResult:
    cv = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=SEED)
    oof = np.zeros((N_REPEATS, len(rows)))
    for fold, (train, held) in enumerate(cv.split(np.zeros(len(rows)), strata)):
        model = fit([rows[i] for i in train], labels[train], config)
        oof[fold // N_SPLITS, held] = model.decision([rows[i] for i in held])
    result = CvResult(config, oof)
    result.a, result.b = platt(oof.ravel(), np.tile(labels, N_REPEATS))
    probs = sigmoid(result.a * oof + result.b)
    result.threshold, result.precision, result.recall = choose_threshold(
        probs, labels, weights, target
    )
    result.ap = float(np.mean([average_precision_score(labels, row) for row in oof]))
    return result


def rules_baseline(items: list[Item], labels: np.ndarray) -> tuple[float, float]:
    from worker.classify import THRESHOLD

    scores = np.array([[analyse(i.title, i.body).score for i in items]])
    return pr_at(scores, labels, THRESHOLD)


def write_model(path: Path, model: Linear, result: CvResult, n_items: int, n_pos: int) -> None:
    """Fold the Platt calibration into the weights and write them as the worker reads them."""
    a, b = result.a, result.b
    weights = {k: round(a * w, 4) for k, w in model.weights.items()}
    weights = {k: w for k, w in sorted(weights.items()) if w != 0.0}
    shipped_weights.write(
        path,
        weights=weights,
        bias=round(a * model.bias + b, 4),
        threshold=result.threshold,
        provenance={
            "trained_on": f"dev: {n_items} items, {n_pos} positive",
            "config": result.config.describe(),
            "cv": {
                "method": f"{N_REPEATS}x{N_SPLITS}-fold, out-of-fold, at this threshold",
                "precision": round(result.precision, 3),
                "recall": round(result.recall, 3),
            },
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--report-only", action="store_true", help="print the CV table, write nothing"
    )
    args = parser.parse_args(argv)

    items = training_items(args.data_dir)
    labels = np.array([item.label for item in items])
    strata = [f"{item.source}:{item.label}" for item in items]
    rows = [model_features(analyse(item.title, item.body)) for item in items]
    weights = design_weights(items)
    print(f"dev items: {len(items)} ({int(labels.sum())} positive)")
    p, r = rules_baseline(items, labels)
    print(f"rules only (dev, threshold fixed): P={p:.3f} R={r:.3f}")

    results: list[CvResult] = []
    for config in configs():
        res = cross_validate(rows, labels, strata, config, weights)
        results.append(res)
        print(
            f"{config.describe():<45} t={res.threshold:.2f} "
            f"P={res.precision:.3f} R={res.recall:.3f} F1={res.f1:.3f} AP={res.ap:.3f}",
            flush=True,
        )
    eligible = [r for r in results if r.precision >= TARGET_PRECISION] or results
    best = max(eligible, key=lambda r: (round(r.recall, 3), round(r.ap, 3), round(r.f1, 3)))
    print(
        f"chosen: {best.config.describe()} t={best.threshold:.2f} "
        f"P={best.precision:.3f} R={best.recall:.3f}"
    )
    probs = sigmoid(best.a * best.oof + best.b)
    for source in sorted({item.source for item in items}):
        mask = np.array([item.source == source for item in items])
        sp, sr = pr_at(probs[:, mask], labels[mask], best.threshold, weights[mask])
        print(
            f"  out-of-fold {source:<24} n={int(mask.sum()):<5} "
            f"pos={int(labels[mask].sum()):<4} P={sp:.3f} R={sr:.3f}"
        )
    if args.report_only:
        return 0
    model = fit(rows, labels, best.config)
    write_model(args.output, model, best, len(items), int(labels.sum()))
    print(f"wrote {args.output} ({len(model.weights)} weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
