"""Decide whether an article is a Ukraine-security story, and about which topics.

Definition (see docs/classifier.md): a story is Ukraine-security when its *main subject* is
the security of Ukraine in the Russia-Ukraine war - ceasefire and peace talks, security
guarantees, peacekeeping/reassurance forces, military aid, the battlefield and strikes, air
defence, sanctions and European/NATO defence decisions as they bear on Ukraine, and
nuclear-plant safety in the war zone.

Two stages, both pure Python and shipped in the package (offline, CPU):

1. A weighted rule layer (``rules``) over curated multilingual term tables (``lexicon``,
   ``topics``; matched by ``matching``): auditable (every decision carries the terms that
   caused it) and working on both input shapes - feed items with a title and a one-line
   description, and full extracted bodies.
2. A learned stage per script, trained on labels of the development splits only and
   shipped as weights: for English (since 12.8) a distilled wide-and-deep network
   (``student``; a linear part plus 32 ReLU units, numpy forward pass) over the rule
   layer's internal scores, which lexicon terms matched and words
   (``features.model_features``), trained on the dev labels plus the neighbour method's
   soft scores on 50,000 unlabelled feed items (``eval/train_distil.py``,
   ``worker/data/classifier_english_student.json``); for Ukrainian and Russian, a logistic
   regression over the rule scores, lexicon matches and word stems
   (``features.cyrillic_features``; ``eval/train_cyrillic.py``,
   ``worker/data/classifier_cyrillic.json``). ``language`` decides which stage reads an
   article; other languages keep the rule decision. The stage's calibrated probability is
   the ``score``; topics still come from the rules; ``evidence["model"]`` lists the top
   contributing features. A full English article the network rejects gets a second look
   by the linear stage of 12.4 (``learned.full_article_second_look``; its lead, then a few
   body windows; ``worker/data/classifier_english.json``, ``eval/train_classifier.py``):
   the network learned from feed snippets only.

``verdict`` puts the stages together into the public :func:`classify`. The optional
``neighbours`` stage (``INGEST_CLASSIFIER=neighbours``) replaces the English stage with one
that also reads the article's nearest labelled stories in sentence-embedding space
(``eval/train_neighbours.py``, ``worker/data/classifier_neighbours.json`` and ``.npz``).
Every weights file is checksummed and verified by ``weights`` when first loaded;
:func:`load_models` loads those a method reads (the worker does, before its pool forks).

Deterministic, and without I/O apart from loading the shipped weights (and the neighbour
stage's model and reference set) once per process.
"""

from __future__ import annotations

from .features import MODEL_BODY_CHARS, cyrillic_features, model_features
from .learned import BODY_WINDOW_MIN_CHARS, BODY_WINDOWS, MAX_MODEL_EVIDENCE
from .rules import (
    COOCCURRENCE_MAX,
    COOCCURRENCE_POINTS,
    LEAD_BOOST,
    LEAD_CHARS,
    MAX_BODY_CHARS,
    MAX_EVIDENCE_TERMS,
    MAX_SNIPPETS,
    OTHER_CONFLICT_DILUTION,
    REPEAT_GAIN,
    SECURITY_SCALE,
    SNIPPET_CHARS,
    THRESHOLD,
    TITLE_WEIGHT_OFF_TOPIC,
    TITLE_WEIGHT_OTHER,
    TITLE_WEIGHT_SECURITY,
    TITLE_WEIGHT_TOPIC,
    TITLE_WEIGHT_UKRAINE,
    TOPIC_MIN_POINTS,
    TOPIC_RELATIVE_MIN,
    UKRAINE_SCALE,
    RuleAnalysis,
    analyse,
)
from .topics import TOPICS
from .verdict import (
    CLASSIFIER_VERSION,
    METHODS,
    NEIGHBOURS_VERSION,
    Classification,
    classifier_version,
    classify,
    classify_rules_only,
    load_models,
)
from .weights import ModelFileError

__all__ = [
    "BODY_WINDOWS",
    "BODY_WINDOW_MIN_CHARS",
    "CLASSIFIER_VERSION",
    "COOCCURRENCE_MAX",
    "COOCCURRENCE_POINTS",
    "LEAD_BOOST",
    "LEAD_CHARS",
    "MAX_BODY_CHARS",
    "MAX_EVIDENCE_TERMS",
    "MAX_MODEL_EVIDENCE",
    "MAX_SNIPPETS",
    "METHODS",
    "MODEL_BODY_CHARS",
    "NEIGHBOURS_VERSION",
    "OTHER_CONFLICT_DILUTION",
    "REPEAT_GAIN",
    "SECURITY_SCALE",
    "SNIPPET_CHARS",
    "THRESHOLD",
    "TITLE_WEIGHT_OFF_TOPIC",
    "TITLE_WEIGHT_OTHER",
    "TITLE_WEIGHT_SECURITY",
    "TITLE_WEIGHT_TOPIC",
    "TITLE_WEIGHT_UKRAINE",
    "TOPICS",
    "TOPIC_MIN_POINTS",
    "TOPIC_RELATIVE_MIN",
    "UKRAINE_SCALE",
    "Classification",
    "ModelFileError",
    "RuleAnalysis",
    "analyse",
    "classifier_version",
    "classify",
    "classify_rules_only",
    "cyrillic_features",
    "load_models",
    "model_features",
]
