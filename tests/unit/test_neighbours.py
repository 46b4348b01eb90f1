"""The optional neighbour classifier (worker.classify.neighbours, INGEST_CLASSIFIER=neighbours).

The vector maths is pure and tested without torch. The tests that embed text need the
``neighbours`` extra: skipped without it locally, a failure under CI (scripts/test.sh
installs it), so CI cannot go green by skipping them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import REQUIRE_SERVICES
from worker.classify import (
    CLASSIFIER_VERSION,
    METHODS,
    NEIGHBOURS_VERSION,
    classifier_version,
    classify,
)
from worker.classify import neighbours as nb
from worker.classify.weights import neighbours_model

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = REPO_ROOT / "seeds" / "seed-article.txt"
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# Held-out figures of neighbours-2026.12.5 (docs/classifier.md, each scored once), kept as
# regression floors. test2, the release gate: P 0.953, R 0.903 (569 TP / 28 FP / 61 FN).
# The floors sit half a point lower: the int8 embedding kernels differ between CPUs and
# can move a few borderline scores (the trainer's near-twin groups differed by one
# between two machines).
NEIGHBOURS_TEST2_MIN_PRECISION = 0.945
NEIGHBOURS_TEST2_MIN_RECALL = 0.895
# The old `test` split (P 0.911, R 0.911) is no longer asserted here: the floors sit on the
# release gate, and scoring both splits cost half a minute of the suite's budget. It is
# reproduced by `python -m eval.classifier_eval --split test --classifier neighbours`.


@pytest.fixture(scope="module")
def extra() -> None:
    """The optional extra is importable (else skip; under CI, fail)."""
    missing = [
        m for m in ("torch", "sentence_transformers", nb.MODEL_PACKAGE)
        if importlib.util.find_spec(m) is None
    ]  # fmt: skip
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"the neighbours extra is not installed: {missing}")
        pytest.skip(f"the neighbours extra is not installed: {missing}")


# --- pure parts ----------------------------------------------------------------------------


def test_features_summarise_the_nearest_labelled_items() -> None:
    sims = np.array([0.9, 0.8, 0.1, 0.7, -0.2, 0.6])
    labels = np.array([1, 0, 1, 1, 0, 0])
    f = nb.neighbour_features(sims, labels, k=3)  # nearest: 0.9 (+), 0.8 (-), 0.7 (+)
    w = np.array([0.81, 0.64, 0.49])
    assert f["nn:vote"] == pytest.approx((0.81 + 0.49) / w.sum() - 0.5)
    assert f["nn:share"] == pytest.approx(2 / 3 - 0.5)
    assert f["nn:margin"] == pytest.approx(0.9 - 0.8)


def test_an_excluded_item_is_never_a_neighbour() -> None:
    """The trainer passes -inf for an item's own similarity (leave-one-out)."""
    sims = np.array([-np.inf, 0.5, 0.4])
    labels = np.array([1, 0, 0])
    f = nb.neighbour_features(sims, labels, k=2)
    assert f["nn:share"] == -0.5
    assert f["nn:vote"] == pytest.approx(-0.5)


def test_k_larger_than_the_reference_uses_all_of_it() -> None:
    f = nb.neighbour_features(np.array([0.3, 0.2]), np.array([1, 0]), k=15)
    assert f["nn:share"] == 0.0


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (4, 16), elements=st.floats(-1, 1, width=32)))
def test_int8_rows_keep_the_cosine(vectors: np.ndarray) -> None:
    norms = np.linalg.norm(vectors, axis=1)
    vectors = vectors[norms > 1e-3]
    if not len(vectors):
        return
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    back = nb.dequantize_rows(*nb.quantize_rows(vectors))
    cos = (back * vectors).sum(1) / np.linalg.norm(back, axis=1)
    assert np.all(cos > 0.999)


def test_reference_round_trips(tmp_path: Path) -> None:
    ref = nb.Reference(
        np.eye(3, dtype=np.float32), np.array([1, 0, 1]), ["Kyiv strike", "Gaza", "Донбас"]
    )
    ref.save(tmp_path / "ref.npz")
    back = nb.Reference.load(tmp_path / "ref.npz")
    np.testing.assert_allclose(back.vectors, ref.vectors, atol=1e-6)
    assert back.labels.tolist() == [1, 0, 1]
    assert back.titles == ref.titles


def test_shipped_reference_is_the_labelled_dev_split() -> None:
    ref = nb.Reference.load()
    assert ref.vectors.shape == (4525, 384)
    assert int(ref.labels.sum()) == 2081  # its 4,525 dev items (before extra4)
    assert len(ref.titles) == 4525
    norms = np.linalg.norm(ref.vectors, axis=1)
    assert np.all(np.abs(norms - 1.0) < 0.01)
    assert {name for name in neighbours_model().weights if name.startswith("nn:")} == {
        "nn:vote", "nn:share", "nn:margin"
    }  # fmt: skip


def test_methods_and_versions() -> None:
    assert METHODS == ("hybrid", "neighbours")
    assert classifier_version() == CLASSIFIER_VERSION
    assert classifier_version("neighbours") == NEIGHBOURS_VERSION != CLASSIFIER_VERSION
    with pytest.raises(ValueError, match="unknown classifier method"):
        classify(title="x", body="y", method="bert")


# --- with the model ------------------------------------------------------------------------


def _seed() -> tuple[str, str]:
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    return title, body


@pytest.mark.usefixtures("extra")
def test_seed_article_with_neighbours() -> None:
    title, body = _seed()
    result = classify(title=title, body=body, language="en", method="neighbours")
    assert result.is_ukraine_security
    assert result.version == NEIGHBOURS_VERSION
    assert {"security_guarantees", "peacekeeping_force"} <= set(result.topics)
    nearest = result.evidence["neighbours"]
    assert len(nearest) == nb.MAX_NEIGHBOUR_EVIDENCE
    sim, sign, _title = nearest[0].split(" ", 2)
    assert float(sim) > 0.5
    assert sign == "+"  # its nearest labelled story is a Ukraine-security one
    assert any(line.startswith("nn:") for line in result.evidence["model"])


@pytest.mark.usefixtures("extra")
def test_off_topic_story_stays_negative() -> None:
    result = classify(
        title="Israel and Hamas agree a ceasefire in Gaza",
        body="Mediators in Qatar said the truce would begin on Sunday with a hostage exchange.",
        language="en",
        method="neighbours",
    )
    assert not result.is_ukraine_security
    assert result.evidence["neighbours"][0].split(" ", 2)[1] == "-"


@pytest.mark.usefixtures("extra")
def test_other_languages_keep_the_rule_decision() -> None:
    """The embedding model is English: a German article gets the same decision and score as
    with the default method, only the version differs."""
    title = "Selenskyj fordert mehr Flugabwehr nach russischem Raketenangriff auf Kiew"
    body = "Die Ukraine braucht nach Angaben des Präsidenten dringend weitere Patriot-Systeme."
    hybrid = classify(title=title, body=body, language="de")
    with_nn = classify(title=title, body=body, language="de", method="neighbours")
    assert (with_nn.is_ukraine_security, with_nn.score) == (
        hybrid.is_ukraine_security,
        hybrid.score,
    )
    assert "neighbours" not in with_nn.evidence
    assert with_nn.version == NEIGHBOURS_VERSION


@pytest.mark.usefixtures("extra")
@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data not available")
def test_held_out_figures_with_neighbours() -> None:
    from eval.classifier_eval import load_items, metrics, run

    second = [item for item in load_items(DATA_DIR) if item.split == "test2"]
    m2 = metrics(run(second, method="neighbours"))
    assert m2.precision >= NEIGHBOURS_TEST2_MIN_PRECISION, m2
    assert m2.recall >= NEIGHBOURS_TEST2_MIN_RECALL, m2
