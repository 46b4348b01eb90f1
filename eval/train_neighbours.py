"""Train the optional neighbour stage (``worker.classify.neighbours``) on the **dev** split only.

Run from the repository root. Needs, at dev time only, the ``train`` extra and the
``neighbours`` extra (``pip install torch==2.13.0`` first, which takes the CPU wheel)::

    python -m eval.train_neighbours [--data-dir PATH] [--report-only] [--cache PATH]

What it does, deterministically:

1. Loads the labelled ``dev`` items and embeds each one's title + lead with the worker's
   own :class:`worker.classify.neighbours.Encoder` (int8, one text per pass); the vectors are
   stored the way the worker loads them (int8 rows), so training sees what inference sees.
2. For every item, the neighbour features
   (:func:`worker.classify.neighbours.neighbour_features`)
   over the *other* labelled items, next to the hybrid model's rule and lexicon features.
3. Chooses the configuration by **grouped** cross-validation (5 folds x 8 repeats,
   stratified by source and label): items whose embeddings are >= 0.8 similar (the same
   story from two feeds, consecutive "key events, day N" lists) always fall in the same
   fold, so a held-out item cannot find its own twin among the neighbours. Inside each
   fold the neighbours of a held-out item come from the training part only. Threshold:
   mean out-of-fold precision >= 0.95 (weighted by the sampling design, as in
   ``eval/train_classifier.py``), best recall.
4. Refits the winner on all of dev, folds the Platt calibration and the neighbour block's
   scale into the weights and writes ``worker/data/classifier_neighbours.json`` (weights,
   bias, threshold, ``k``, their SHA-256 and provenance; ``worker.classify.weights`` reads
   it) and the reference set ``worker/data/classifier_neighbours.npz`` (int8 vectors,
   labels, titles).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedGroupKFold

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import eval.train_classifier as tc  # noqa: E402
from eval.classifier_eval import DEFAULT_DATA_DIR, Item  # noqa: E402
from eval.train_embed_classifier import DEFAULT_CACHE, EmbeddingCache  # noqa: E402
from worker.classify import analyse, model_features  # noqa: E402
from worker.classify import neighbours as nb  # noqa: E402
from worker.classify import weights as shipped_weights  # noqa: E402

OUTPUT = shipped_weights.NEIGHBOURS_PATH
REFERENCE = nb.REFERENCE_PATH
TWIN_SIMILARITY = 0.8
"""Items at least this similar are one group in cross-validation."""
SPARSE = {"rules+lex": ("r:", "lx:"), "rules+lex+words": ("r:", "lx:", "t:", "w:")}
for _name, _prefixes in SPARSE.items():
    tc.GROUPS[_name + "+nn"] = (*_prefixes, "nn:")


@dataclass(frozen=True)
class Config:
    sparse: str
    k: int
    c: float
    scale: float
    """Multiplier of the neighbour features (larger = weaker regularisation of them)."""

    def describe(self) -> str:
        return f"{self.sparse}+nn k={self.k} C={self.c:g} scale={self.scale:g}"

    def linear(self) -> tc.Config:
        return tc.Config(self.sparse + "+nn", "l2", self.c, 1.0)


def configs() -> list[Config]:
    return [
        Config(sparse, k, c, scale)
        for sparse in SPARSE
        for k in (5, 15)
        for c in (0.3, 1.0)
        for scale in (1.0, 3.0)
    ]


@dataclass
class Dev:
    items: list[Item]
    rows: list[dict[str, float]]
    similarities: np.ndarray
    """Cosine similarities between dev items, diagonal -inf (never one's own neighbour)."""
    labels: np.ndarray
    strata: list[str]
    groups: np.ndarray
    weights: np.ndarray


_DEV: Dev | None = None


def with_neighbours(
    dev: Dev, rows_idx: np.ndarray, pool_idx: np.ndarray, config: Config
) -> list[dict[str, float]]:
    """Rows ``rows_idx`` with neighbour features drawn from ``pool_idx`` only."""
    sims = dev.similarities[np.ix_(rows_idx, pool_idx)]
    labels = dev.labels[pool_idx]
    out = []
    for row, s in zip(rows_idx, sims, strict=True):
        feats = nb.neighbour_features(s, labels, config.k)
        out.append({**dev.rows[row], **{k: v * config.scale for k, v in feats.items()}})
    return out


@dataclass
class Result:
    config: Config
    oof: np.ndarray
    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5
    precision: float = 0.0
    recall: float = 0.0
    ap: float = 0.0


def cross_validate(config: Config) -> Result:
    dev = _DEV
    assert dev is not None
    n = len(dev.labels)
    oof = np.zeros((tc.N_REPEATS, n))
    for repeat in range(tc.N_REPEATS):
        cv = StratifiedGroupKFold(n_splits=tc.N_SPLITS, shuffle=True, random_state=tc.SEED + repeat)
        for train, held in cv.split(np.zeros(n), dev.strata, dev.groups):
            model = tc.fit(
                with_neighbours(dev, train, train, config), dev.labels[train], config.linear()
            )
            oof[repeat, held] = model.decision(with_neighbours(dev, held, train, config))
    result = Result(config, oof)
    result.a, result.b = tc.platt(oof.ravel(), np.tile(dev.labels, tc.N_REPEATS))
    probs = tc.sigmoid(result.a * oof + result.b)
    result.threshold, result.precision, result.recall = tc.choose_threshold(
        probs, dev.labels, dev.weights
    )
    result.ap = float(np.mean([average_precision_score(dev.labels, row) for row in oof]))
    return result


def load_dev(data_dir: Path, cache_path: Path) -> tuple[Dev, nb.Reference]:
    items = tc.training_items(data_dir)
    analyses = [analyse(item.title, item.body) for item in items]
    cache = EmbeddingCache(cache_path, nb.Encoder(), "int8")
    raw = cache.embed([nb.embedding_text(a.title, a.body) for a in analyses])
    cache.save()
    labels = np.array([item.label for item in items])
    reference = nb.Reference(
        nb.dequantize_rows(*nb.quantize_rows(raw.astype(np.float32))),
        labels,
        [" ".join(item.title.split()) for item in items],
    )
    sims = (reference.vectors @ reference.vectors.T).astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    _, groups = connected_components(sims >= TWIN_SIMILARITY, directed=False)
    dev = Dev(
        items=items,
        rows=[model_features(a) for a in analyses],
        similarities=sims,
        labels=labels,
        strata=[f"{item.source}:{item.label}" for item in items],
        groups=groups,
        weights=tc.design_weights(items),
    )
    return dev, reference


def write_model(
    path: Path, weights: dict[str, float], bias: float, result: Result, dev: Dev
) -> None:
    """Write the calibrated weights, threshold and ``k`` as the worker reads them."""
    shipped_weights.write(
        path,
        weights=weights,
        bias=bias,
        threshold=result.threshold,
        params={"k": result.config.k},
        provenance={
            "trained_on": f"dev: {len(dev.labels)} items, {int(dev.labels.sum())} positive",
            "config": result.config.describe(),
            "cv": {
                "method": f"grouped {tc.N_REPEATS}x{tc.N_SPLITS}-fold, out-of-fold, "
                "at this threshold",
                "precision": round(result.precision, 3),
                "recall": round(result.recall, 3),
            },
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--report-only", action="store_true", help="print the CV table only")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="embedding cache file (by text digest; never committed)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    global _DEV
    dev, reference = load_dev(args.data_dir, args.cache)
    _DEV = dev
    print(
        f"dev items: {len(dev.labels)} ({int(dev.labels.sum())} positive), "
        f"{int(dev.groups.max()) + 1} groups of near-twins",
        flush=True,
    )
    results: list[Result] = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("fork")) as pool:
        for res in pool.map(cross_validate, configs()):
            results.append(res)
            print(
                f"{res.config.describe():<40} t={res.threshold:.2f} "
                f"P={res.precision:.3f} R={res.recall:.3f} AP={res.ap:.3f}",
                flush=True,
            )
    eligible = [r for r in results if r.precision >= tc.TARGET_PRECISION] or results
    best = max(eligible, key=lambda r: (round(r.recall, 3), round(r.ap, 3)))
    print(
        f"chosen: {best.config.describe()} t={best.threshold:.2f} "
        f"P={best.precision:.3f} R={best.recall:.3f}"
    )
    probs = tc.sigmoid(best.a * best.oof + best.b)
    for source in sorted({item.source for item in dev.items}):
        mask = np.array([item.source == source for item in dev.items])
        sp, sr = tc.pr_at(probs[:, mask], dev.labels[mask], best.threshold, dev.weights[mask])
        print(
            f"  out-of-fold {source:<24} n={int(mask.sum()):<5} "
            f"pos={int(dev.labels[mask].sum()):<4} P={sp:.3f} R={sr:.3f}"
        )
    if args.report_only:
        return 0

    everything = np.arange(len(dev.labels))
    model = tc.fit(
        with_neighbours(dev, everything, everything, best.config), dev.labels, best.config.linear()
    )
    # Fold Platt calibration (a, b) and the neighbour block's scale into plain weights.
    weights = {
        name: round(best.a * w * (best.config.scale if name.startswith("nn:") else 1.0), 4)
        for name, w in sorted(model.weights.items())
    }
    weights = {k: w for k, w in weights.items() if w != 0.0}
    bias = round(best.a * model.bias + best.b, 4)
    write_model(OUTPUT, weights, bias, best, dev)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    reference.save(REFERENCE)
    print(
        f"wrote {OUTPUT} ({len(weights)} weights) and "
        f"{REFERENCE} ({REFERENCE.stat().st_size} bytes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
