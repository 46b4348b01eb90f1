"""Placeholder head (no weights): regenerate with ``python -m eval.train_embed_classifier``."""

from __future__ import annotations

VERSION: str = "embed-0"
INPUTS: tuple[str, ...] = ()
THRESHOLD: float = 0.5
BIAS: float = 0.0
EMBED_WEIGHTS: dict[str, tuple[float, ...]] = {}
WEIGHTS: dict[str, float] = {}
