"""Train the Ukrainian/Russian learned stage of ``worker.classify`` on ``ml_dev`` only.

Run from the repository root (needs the ``train`` extra at dev time only)::

    python -m eval.train_cyrillic [--data-dir PATH] [--report-only]

What it does, deterministically:

1. Loads the 647 ``ml_dev`` items (47 Ukrainian RSS leads, 600 Russian Telegram posts,
   single-pass labels, ``eval/labels/MULTILINGUAL_PLAN.md``). ``ml_test`` is never read.
2. Features: ``worker.classify.cyrillic_features`` - the rule layer's scores, the lexicon
   terms that matched and word stems - the very code the worker runs.
3. Chooses feature groups and C by repeated stratified 5-fold cross-validation (8 repeats,
   folds stratified by language and label), with the English trainer's machinery
   (``eval/train_classifier.py``): the threshold is the one whose mean out-of-fold precision
   is >= ``TARGET_PRECISION`` with the best recall; Platt calibration on pooled OOF scores.
4. Refits the winner on all of ``ml_dev`` and writes ``worker/data/classifier_cyrillic.json``
   (weights, bias, threshold, their SHA-256 and provenance; ``worker.classify.weights``
   reads it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import eval.train_classifier as tc  # noqa: E402
from eval.classifier_eval import DEFAULT_DATA_DIR, load_items  # noqa: E402
from worker.classify import THRESHOLD, analyse, cyrillic_features  # noqa: E402
from worker.classify import weights as shipped_weights  # noqa: E402

TARGET_PRECISION = 0.93
"""Out-of-fold precision the threshold must reach (the issue's target is 0.92 held out)."""
CYRILLIC_GROUPS = {
    "cyr:rules+lex": ("r:", "lx:"),
    "cyr:rules+lex+stems": ("r:", "lx:", "s:", "ts:"),
    "cyr:rules+stems": ("r:", "s:", "ts:"),
    # Consonant skeletons, shared by Ukrainian and Russian cognates (CYRILLIC2_PLAN.md).
    "cyr:rules+lex+skel": ("r:", "lx:", "k:", "tk:"),
    "cyr:rules+lex+stems+skel": ("r:", "lx:", "s:", "ts:", "k:", "tk:"),
}


def configs() -> list[tc.Config]:
    return [
        tc.Config(groups, "l2", c, scale)
        for groups in CYRILLIC_GROUPS
        for scale in (0.3, 1.0)
        for c in (0.3, 1.0, 3.0, 10.0, 30.0)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", type=Path, default=shipped_weights.CYRILLIC_PATH)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)

    tc.GROUPS.update(CYRILLIC_GROUPS)
    items = [i for i in load_items(args.data_dir) if i.split == "ml_dev"]
    labels = np.array([i.label for i in items])
    rows = [cyrillic_features(analyse(i.title, i.body)) for i in items]
    strata = [f"{i.language}:{i.label}" for i in items]
    rule = np.array([[analyse(i.title, i.body).score for i in items]])
    p, r = tc.pr_at(rule, labels, THRESHOLD)
    print(
        f"{len(items)} ml_dev items, {int(labels.sum())} positive; rule layer P={p:.3f} R={r:.3f}"
    )

    best: tc.CvResult | None = None
    for config in configs():
        result = tc.cross_validate(rows, labels, strata, config, target=TARGET_PRECISION)
        print(
            f"{config.describe():<40} t={result.threshold:.2f} P={result.precision:.3f} "
            f"R={result.recall:.3f} AP={result.ap:.3f}"
        )
        key = (result.recall, result.ap)
        if result.precision >= TARGET_PRECISION and (best is None or key > (best.recall, best.ap)):
            best = result
    if best is None:
        print("no configuration reached the precision target", file=sys.stderr)
        return 1
    print(
        f"chosen: {best.config.describe()} t={best.threshold:.2f} CV P={best.precision:.3f} "
        f"R={best.recall:.3f}"
    )
    if args.report_only:
        return 0
    model = tc.fit(rows, labels, best.config)
    # Fold the Platt calibration into the weights: p = sigmoid(a * (bias + w.x) + b).
    weights = {k: round(best.a * w, 6) for k, w in sorted(model.weights.items())}
    bias = round(best.a * model.bias + best.b, 6)
    shipped_weights.write(
        args.output,
        weights=weights,
        bias=bias,
        threshold=float(best.threshold),
        provenance={
            "trained_on": f"ml_dev: {len(items)} items, {int(labels.sum())} positive",
            "config": best.config.describe(),
            "cv": {"precision": round(best.precision, 4), "recall": round(best.recall, 4)},
        },
    )
    print(f"wrote {args.output}: {len(weights)} weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
