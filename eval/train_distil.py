"""Distil the neighbour method into the English learned stage: teacher -> torch-free student.

Run from the repository root, after ``python -m eval.distil_teacher`` has cached the
teacher's vectors of unlabelled dump items (``eval/cache/distil_teacher_*.npz``)::

    nice -n 10 python -m eval.train_distil [--repeats 2] [--jobs 2] [--report-only]
                                           [--only NAME] [--output PATH]

(2026-12-03: the first grid, ~15 min on 2 busy cores; its candidate failed the test2 gate.
2026-12-04: ``--grid v2 --target-precision 0.96`` on 50,000 teacher-scored dump items chose
and wrote the second candidate, ``worker/data/classifier_english_student.json``; a linear
winner would go to ``worker/data/classifier_english.json``. docs/classifier.md, "Distilling
the neighbour method", and ``eval/labels/HOLDOUT4_PLAN.md``.)

Why: the neighbour method (MiniLM + nearest labelled dev items) reaches ~5 points more dev
recall than the default hybrid at P 0.95 but needs torch. Its knowledge can be moved into a
model the default install already runs - the English stage's logistic regression over rule,
lexicon and word features - by training that model on the real dev labels *plus* the
teacher's soft scores on tens of thousands of unlabelled feed items of the same dump: the
student sees many more wordings, labelled the way the teacher reads them. At run time
nothing changes but the weights file.

Fold discipline (dev only, the grouped folds of ``eval/train_neighbours.py``): inside each
fold the *teacher itself* is rebuilt from the training part - its reference set and its
logistic regression (``rules+lex+nn k=15 C=0.3 scale=3``, the shipped configuration) - and
only then scores the dump. So no held-out dev label reaches a dump item's target, not even
through a near-twin in the dump. The held-out items are scored by the teacher of that fold
too, which gives the neighbour method's own CV row on the same folds; the hybrid's row is
the shipped configuration with no dump items. The student's soft targets are the fold
teacher's ``sigmoid(decision)``; each dump item enters the fit twice, as a positive with
weight ``lam * p`` and as a negative with weight ``lam * (1 - p)`` (dev items weigh 1).
Selection and threshold as in ``eval/train_classifier.py``: Platt on pooled out-of-fold
scores, design-weighted precision >= 0.95, best recall. The final model: the teacher on all
of dev scores the dump, the chosen student is fitted on all of dev + dump and written in
the format of ``worker/data/classifier_english.json`` (linear) or of
``worker/classify/student.py`` (the network).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedGroupKFold

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import eval.train_classifier as tc  # noqa: E402
import eval.train_neighbours as tn  # noqa: E402
import worker.classify.student as student_file  # noqa: E402
from eval import distil_teacher  # noqa: E402
from eval.classifier_eval import DEFAULT_DATA_DIR  # noqa: E402
from eval.distil_teacher import CACHE_DIR  # noqa: E402
from eval.sample_extra import text_key  # noqa: E402
from worker.classify import analyse, model_features  # noqa: E402
from worker.classify import neighbours as nb  # noqa: E402
from worker.classify import weights as shipped_weights  # noqa: E402

DEV_CACHE = CACHE_DIR / "minilm-dev.npz"
TEACHER = tn.Config("rules+lex", 15, 0.3, 3.0)
"""The shipped neighbour configuration (``neighbours-2026.12.6``)."""
SIM_CHUNK = 4_000


@dataclass(frozen=True)
class Student:
    groups: str
    c: float
    """Linear: liblinear's C. MLP: the weight decay."""
    lam: float
    """Weight of one dump item relative to one dev item (0: the plain hybrid)."""
    kind: str = "linear"

    def describe(self) -> str:
        if self.kind == "mlp":
            return f"mlp{MLP_HIDDEN} {self.groups} wd={self.c:g} lam={self.lam:g}"
        return f"{self.groups} C={self.c:g} lam={self.lam:g}"


HYBRID = Student("rules+lex+words", 0.3, 0.0)
"""The shipped hybrid configuration (``hybrid-2026.12.3``), no dump items."""


def students() -> list[Student]:
    """The grid (the shipped hybrid first); ``--only`` keeps the hybrid and one student."""
    grid = _grid_v2() if _GRID == "v2" else _grid()
    if _ONLY:
        grid = [s for s in grid if s.describe() in (_ONLY, HYBRID.describe())]
        if len(grid) < 2:
            raise SystemExit(f"--only {_ONLY!r} is not in the grid")
    return grid


def _grid() -> list[Student]:
    words, bigrams = "rules+lex+words", "rules+lex+words+bigrams"
    return [
        HYBRID,
        *(Student(words, 0.3, lam) for lam in (0.3, 1.0, 3.0)),
        Student(bigrams, 0.3, 1.0),
        *(Student(words, 1e-4, lam, "mlp") for lam in (0.0, 1.0, 3.0)),
    ]


def _grid_v2() -> list[Student]:
    """The second student's grid (``HOLDOUT4_PLAN.md``): the first grid's winner and one step
    past its edge (lam 3 was the largest weight tried), on the larger teacher cache."""
    words = "rules+lex+words"
    return [HYBRID, *(Student(words, 1e-4, lam, "mlp") for lam in (3.0, 10.0))]


MLP_HIDDEN = 32
MLP_EPOCHS = 6
MLP_BATCH = 256
MLP_MAX_VOCAB = 30_000


@dataclass
class Mlp:
    """A wide-and-deep student: ``z = bias + x.linear + out . relu(hidden_bias + x @ hidden)``
    over sparse features (the numpy forward pass a worker would run)."""

    vocab: dict[str, int]
    linear: np.ndarray
    hidden: np.ndarray
    hidden_bias: np.ndarray
    out: np.ndarray
    bias: float

    def decision(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Logits through the student file's own forward pass, so the CV scores the exact
        computation a loaded student runs (the threshold is not used for logits)."""
        model = student_file.StudentModel(
            vocab=self.vocab,
            linear=self.linear,
            hidden=self.hidden,
            hidden_bias=self.hidden_bias,
            out=self.out,
            bias=self.bias,
            threshold=0.0,
        )
        return np.array([model.logit(row)[0] for row in rows], dtype=np.float64)


def fit_mlp(
    rows: list[dict[str, float]], targets: np.ndarray, weights: np.ndarray, student: Student
) -> Mlp:
    """Train the MLP student with torch (dev time only), soft targets, fixed seed."""
    import torch

    torch.manual_seed(tc.SEED)
    torch.set_num_threads(1)
    prefixes = tuple(tc.GROUPS[student.groups])
    df: dict[str, int] = {}
    for r in rows:
        for k in r:
            if k.startswith(prefixes):
                df[k] = df.get(k, 0) + 1
    names = sorted(
        (k for k, n in df.items() if k.startswith("r:") or n >= tc.MIN_DF),
        key=lambda k: (-df[k], k),
    )[:MLP_MAX_VOCAB]
    vocab = {k: i for i, k in enumerate(sorted(names))}
    idx_rows = [[(vocab[k], v) for k, v in r.items() if k in vocab] for r in rows]
    v_size = len(vocab)
    emb_h = torch.nn.EmbeddingBag(v_size, MLP_HIDDEN, mode="sum")
    emb_w = torch.nn.EmbeddingBag(v_size, 1, mode="sum")
    torch.nn.init.normal_(emb_h.weight, std=0.05)
    torch.nn.init.zeros_(emb_w.weight)
    hb = torch.nn.Parameter(torch.zeros(MLP_HIDDEN))
    out = torch.nn.Linear(MLP_HIDDEN, 1)
    params = [*emb_h.parameters(), *emb_w.parameters(), hb, *out.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=student.c)
    y_all = torch.tensor(targets, dtype=torch.float32)
    w_all = torch.tensor(weights, dtype=torch.float32)
    gen = np.random.default_rng(tc.SEED)

    def forward(batch: np.ndarray) -> torch.Tensor:
        flat_idx, flat_val, offsets = [], [], []
        for i in batch:
            offsets.append(len(flat_idx))
            for j, v in idx_rows[i]:
                flat_idx.append(j)
                flat_val.append(v)
        ti = torch.tensor(flat_idx, dtype=torch.long)
        to = torch.tensor(offsets, dtype=torch.long)
        tv = torch.tensor(flat_val, dtype=torch.float32)
        h = torch.relu(emb_h(ti, to, per_sample_weights=tv) + hb)
        lin: torch.Tensor = emb_w(ti, to, per_sample_weights=tv)[:, 0]
        res: torch.Tensor = out(h)[:, 0] + lin
        return res

    for _ in range(MLP_EPOCHS):
        order = gen.permutation(len(rows))
        for start in range(0, len(rows), MLP_BATCH):
            batch = order[start : start + MLP_BATCH]
            logits = forward(batch)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y_all[batch], weight=w_all[batch], reduction="sum"
            ) / float(w_all[batch].sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return Mlp(
        vocab=vocab,
        linear=emb_w.weight.detach().numpy()[:, 0].astype(np.float64),
        hidden=emb_h.weight.detach().numpy().astype(np.float64),
        hidden_bias=hb.detach().numpy().astype(np.float64),
        out=out.weight.detach().numpy()[0].astype(np.float64),
        bias=float(out.bias.detach().numpy()[0]),
    )


@dataclass
class Dump:
    rows: list[dict[str, float]]
    vectors: np.ndarray
    teacher: np.ndarray
    """The shipped teacher's probability (for the report only)."""
    strata: np.ndarray
    priority: np.ndarray


_DEV: tn.Dev | None = None
_VECTORS: np.ndarray | None = None
_DUMP: Dump | None = None
_REPEATS = 2
_ONLY = ""
_GRID = "v1"
_TARGET = tc.TARGET_PRECISION


def load_dump(data_dir: Path, limit: int = 0, exclude: Path | None = None) -> Dump:
    """Merge the teacher's shard caches (every shard file found) in priority order.

    Only items that are *still* candidates are kept: a split labelled after the cache was
    written (``test4``) must not reach the student's training data, by link or by a
    re-titled copy. ``exclude`` is the ``sample.jsonl`` of a split drawn but not yet
    labelled (its links and texts are dropped too)."""
    parts = [np.load(p) for p in sorted(CACHE_DIR.glob("distil_teacher_*of*.npz"))]
    if not parts:
        raise SystemExit("no teacher cache: run python -m eval.distil_teacher first")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files}
    allowed = {str(d["link"]) for d in distil_teacher.candidates(data_dir)}
    banned_text: set[str] = set()
    if exclude is not None:
        for line in exclude.read_text("utf-8").splitlines():
            doc = json.loads(line)
            allowed.discard(str(doc["link"]))
            banned_text |= {text_key(doc["title"]), text_key(doc["description"])} - {""}
    keep = np.array(
        [
            str(link) in allowed and not ({text_key(str(t)), text_key(str(d))} & banned_text)
            for link, t, d in zip(cat["links"], cat["titles"], cat["descriptions"], strict=True)
        ],
        dtype=bool,
    )
    print(f"teacher cache: {len(keep)} items, {int((~keep).sum())} dropped as labelled since")
    cat = {k: v[keep] for k, v in cat.items()}
    order = np.lexsort((cat["links"], cat["priority"]))
    if limit:
        order = order[:limit]
    rows = [
        model_features(analyse(str(t), str(d)))
        for t, d in zip(cat["titles"][order], cat["descriptions"][order], strict=True)
    ]
    return Dump(
        rows=rows,
        vectors=cat["vectors"][order].astype(np.float32),
        teacher=cat["teacher"][order].astype(np.float64),
        strata=cat["strata"][order],
        priority=cat["priority"][order],
    )


def teacher_on_dump(train: np.ndarray) -> np.ndarray:
    """The teacher rebuilt on dev items ``train`` only: its probability for every dump item."""
    dev, dump, vectors = _DEV, _DUMP, _VECTORS
    assert dev is not None
    assert dump is not None
    assert vectors is not None
    model = tc.fit(
        tn.with_neighbours(dev, train, train, TEACHER), dev.labels[train], TEACHER.linear()
    )
    reference = vectors[train]
    labels = dev.labels[train]
    scores = np.empty(len(dump.rows))
    for start in range(0, len(dump.rows), SIM_CHUNK):
        sims = dump.vectors[start : start + SIM_CHUNK] @ reference.T
        rows = []
        for j, s in enumerate(sims):
            feats = nb.neighbour_features(s.astype(np.float64), labels, TEACHER.k)
            scaled = {k: v * TEACHER.scale for k, v in feats.items()}
            rows.append({**dump.rows[start + j], **scaled})
        scores[start : start + SIM_CHUNK] = model.decision(rows)
    return tc.sigmoid(scores)


def fit_student(
    rows: list[dict[str, float]],
    labels: np.ndarray,
    weights: np.ndarray,
    student: Student,
) -> tc.Linear:
    """``tc.fit`` with sample weights (vocabulary from these rows, min. df 2, then pruned)."""
    prefixes = tc.GROUPS[student.groups]
    selected = [tc.select(r, prefixes) for r in rows]
    df: dict[str, int] = {}
    for r in selected:
        for k in r:
            df[k] = df.get(k, 0) + 1
    keep = {k for k, n in df.items() if k.startswith("r:") or n >= tc.MIN_DF}
    selected = [{k: v for k, v in r.items() if k in keep} for r in selected]
    vec = DictVectorizer(sort=True)
    x = sparse.csr_matrix(vec.fit_transform(selected))
    x.indices = x.indices.astype(np.int32)
    x.indptr = x.indptr.astype(np.int32)
    model = LogisticRegression(C=student.c, solver="liblinear", max_iter=5000, random_state=tc.SEED)
    model.fit(x, labels, sample_weight=weights)
    coef = model.coef_[0]
    names = vec.get_feature_names_out()
    order = np.argsort(-np.abs(coef), kind="stable")[: tc.MAX_FEATURES]
    kept = {str(names[i]): float(coef[i]) for i in order if abs(coef[i]) >= 1e-4}
    return tc.Linear(kept, float(model.intercept_[0]))


def mlp_data(
    train: np.ndarray, soft: np.ndarray, lam: float
) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
    """Dev rows ``train`` (hard targets, weight 1) plus each dump row once (soft target)."""
    dev, dump = _DEV, _DUMP
    assert dev is not None
    assert dump is not None
    rows = [dev.rows[i] for i in train]
    targets = [float(v) for v in dev.labels[train]]
    weights = [1.0] * len(train)
    if lam > 0:
        rows += dump.rows
        targets += list(soft)
        weights += [lam] * len(dump.rows)
    return rows, np.array(targets), np.array(weights)


def fit_any(train: np.ndarray, soft: np.ndarray, student: Student) -> tc.Linear | Mlp:
    if student.kind == "mlp":
        return fit_mlp(*mlp_data(train, soft, student.lam), student)
    return fit_student(*student_data(train, soft, student.lam), student)


def student_data(
    train: np.ndarray, soft: np.ndarray, lam: float
) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
    """Dev rows ``train`` (weight 1) plus every dump row twice, as soft positive/negative."""
    dev, dump = _DEV, _DUMP
    assert dev is not None
    assert dump is not None
    rows = [dev.rows[i] for i in train]
    labels = [int(v) for v in dev.labels[train]]
    weights = [1.0] * len(train)
    if lam > 0:
        rows += dump.rows + dump.rows
        labels += [1] * len(dump.rows) + [0] * len(dump.rows)
        weights += list(lam * soft) + list(lam * (1.0 - soft))
    return rows, np.array(labels), np.array(weights)


def folds() -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The grouped folds of ``eval/train_neighbours.py`` (its first ``_REPEATS`` repeats)."""
    dev = _DEV
    assert dev is not None
    n = len(dev.labels)
    out = []
    for repeat in range(_REPEATS):
        cv = StratifiedGroupKFold(n_splits=tc.N_SPLITS, shuffle=True, random_state=tc.SEED + repeat)
        for train, held in cv.split(np.zeros(n), dev.strata, dev.groups):
            out.append((repeat, train, held))
    return out


def run_fold(
    fold: tuple[int, np.ndarray, np.ndarray],
) -> tuple[int, np.ndarray, dict[str, np.ndarray]]:
    """Teacher and every student on one fold: out-of-fold decisions for the held-out items."""
    repeat, train, held = fold
    dev = _DEV
    assert dev is not None
    out: dict[str, np.ndarray] = {}
    teacher = tc.fit(
        tn.with_neighbours(dev, train, train, TEACHER), dev.labels[train], TEACHER.linear()
    )
    out["teacher"] = teacher.decision(tn.with_neighbours(dev, held, train, TEACHER))
    soft = teacher_on_dump(train)
    held_rows = [dev.rows[i] for i in held]
    for student in students():
        out[student.describe()] = fit_any(train, soft, student).decision(held_rows)
    print(f"  fold done (repeat {repeat}, {len(held)} held out)", flush=True)
    return repeat, held, out


def summarise(name: str, oof: np.ndarray) -> tc.CvResult:
    dev = _DEV
    assert dev is not None
    result = tc.CvResult(tc.Config(name, "l2", 0.0), oof)
    result.a, result.b = tc.platt(oof.ravel(), np.tile(dev.labels, oof.shape[0]))
    probs = tc.sigmoid(result.a * oof + result.b)
    result.threshold, result.precision, result.recall = tc.choose_threshold(
        probs, dev.labels, dev.weights, target=_TARGET
    )
    result.ap = float(np.mean([average_precision_score(dev.labels, row) for row in oof]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the grouped 5 folds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dump-limit", type=int, default=0, help="first N dump items only")
    parser.add_argument("--report-only", action="store_true", help="print the CV table only")
    parser.add_argument(
        "--only", default="", help="cross-validate the hybrid and this student only (its name)"
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--grid", choices=("v1", "v2"), default="v1", help="v2: HOLDOUT4_PLAN")
    parser.add_argument(
        "--target-precision",
        type=float,
        default=tc.TARGET_PRECISION,
        help="CV precision the threshold must reach (design-weighted, out-of-fold)",
    )
    parser.add_argument(
        "--exclude-sample", type=Path, default=None, help="sample.jsonl of an unlabelled split"
    )
    args = parser.parse_args(argv)

    global _DEV, _DUMP, _VECTORS, _REPEATS, _ONLY, _GRID, _TARGET
    _REPEATS, _ONLY, _GRID, _TARGET = args.repeats, args.only, args.grid, args.target_precision
    dev, reference = tn.load_dev(args.data_dir, DEV_CACHE)
    _DEV, _VECTORS = dev, reference.vectors
    _DUMP = dump = load_dump(args.data_dir, args.dump_limit, args.exclude_sample)
    print(
        f"dev items: {len(dev.labels)} ({int(dev.labels.sum())} positive), "
        f"{int(dev.groups.max()) + 1} groups; dump items: {len(dump.rows)} "
        f"(shipped teacher >= 0.68: {int((dump.teacher >= 0.68).sum())})",
        flush=True,
    )
    names = ["teacher"] + [s.describe() for s in students()]
    oof = {name: np.zeros((args.repeats, len(dev.labels))) for name in names}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("fork")) as pool:
        for repeat, held, out in pool.map(run_fold, folds()):
            for name, scores in out.items():
                oof[name][repeat, held] = scores
    results = {name: summarise(name, scores) for name, scores in oof.items()}
    print(
        f"grouped {args.repeats}x{tc.N_SPLITS}-fold CV on dev "
        f"(design-weighted, P >= {_TARGET:.2f}):"
    )
    for name, res in results.items():
        label = {"teacher": f"neighbours ({TEACHER.describe()})"}.get(name, name)
        if name == HYBRID.describe():
            label += "  [shipped hybrid configuration]"
        print(
            f"  {label:<58} t={res.threshold:.2f} P={res.precision:.3f} "
            f"R={res.recall:.3f} AP={res.ap:.3f}",
            flush=True,
        )
    candidates = [s for s in students() if s.lam > 0]
    eligible = [s for s in candidates if results[s.describe()].precision >= _TARGET] or candidates
    best = max(
        eligible,
        key=lambda s: (round(results[s.describe()].recall, 3), round(results[s.describe()].ap, 3)),
    )
    chosen = results[best.describe()]
    print(
        f"chosen: {best.describe()} t={chosen.threshold:.2f} "
        f"P={chosen.precision:.3f} R={chosen.recall:.3f}"
    )
    if args.report_only:
        return 0
    everything = np.arange(len(dev.labels))
    soft = teacher_on_dump(everything)
    agree = float(np.corrcoef(soft, dump.teacher)[0, 1])
    print(f"final teacher on the dump: correlation with the shipped teacher {agree:.3f}")
    provenance: dict[str, object] = {
        "trained_on": f"dev: {len(dev.labels)} items, {int(dev.labels.sum())} positive; "
        f"{len(dump.rows)} unlabelled 2023 dump items with soft targets of the teacher "
        f"({TEACHER.describe()}, reference set: dev)",
        "config": best.describe(),
        "cv": {
            "method": f"grouped {args.repeats}x{tc.N_SPLITS}-fold (eval/train_neighbours.py's "
            "folds), teacher rebuilt per fold, out-of-fold, at this threshold",
            "precision": round(chosen.precision, 3),
            "recall": round(chosen.recall, 3),
        },
    }
    model = fit_any(everything, soft, best)
    a, b = chosen.a, chosen.b
    if isinstance(model, Mlp):
        output = args.output or student_file.STUDENT_PATH
        names = sorted(model.vocab, key=model.vocab.__getitem__)
        student_file.write(
            output,
            features=names,
            arrays={
                "linear": a * model.linear,
                "hidden": model.hidden,
                "hidden_bias": model.hidden_bias,
                "out": a * model.out,
            },
            bias=round(a * model.bias + b, 6),
            threshold=chosen.threshold,
            provenance=provenance,
        )
        print(f"wrote {output} ({len(names)} features)")
        return 0
    output = args.output or tc.OUTPUT
    shipped_weights.write(
        output,
        weights={
            k: w for k, w in sorted((k, round(a * w, 4)) for k, w in model.weights.items()) if w
        },
        bias=round(a * model.bias + b, 4),
        threshold=chosen.threshold,
        provenance=provenance,
    )
    print(f"wrote {output} ({len(model.weights)} weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
