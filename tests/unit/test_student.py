"""The distilled English stage (worker.classify.student): shipped, checksummed, numpy only."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from worker.classify import analyse, classify, model_features
from worker.classify import student as st
from worker.classify.weights import ModelFileError


def test_the_shipped_student_loads_and_is_small() -> None:
    model = st.load()
    assert 0.0 < model.threshold < 1.0
    assert len(model.vocab) == model.hidden.shape[0] == model.linear.shape[0]
    assert model.hidden.shape[1] == model.out.shape[0] == model.hidden_bias.shape[0]
    assert any(name.startswith("w:") for name in model.vocab)
    assert st.STUDENT_PATH.stat().st_size < 6_000_000


def test_the_forward_pass_is_the_documented_formula() -> None:
    model = st.load()
    features = model_features(analyse("Russian missiles hit Kharkiv", "Air defence shot down 20"))
    z, contributions = model.logit(features)
    names = [k for k in features if k in model.vocab]
    idx = [model.vocab[k] for k in names]
    x = np.array([features[k] for k in names])
    hidden = np.maximum(model.hidden_bias + x @ model.hidden[idx], 0.0)
    expected = model.bias + x @ model.linear[idx] + hidden @ model.out
    assert z == pytest.approx(expected)
    assert sum(c for c, _ in contributions) == pytest.approx(z - model.bias)


def test_english_text_is_decided_by_the_student() -> None:
    model = st.student_model()
    result = classify(
        title="Ukraine says Russian drones struck Odesa port overnight",
        body="Air defences shot down most of the drones, the military said.",
        language="en",
    )
    assert result.is_ukraine_security
    assert result.score >= model.threshold
    assert result.evidence["model"][0].startswith("rule_score=")
    assert len(result.evidence["model"]) > 1


def _copy(tmp_path: Path, edit: object) -> Path:
    doc = json.loads(st.STUDENT_PATH.read_text("utf-8"))
    assert callable(edit)
    edit(doc)
    out = tmp_path / st.STUDENT_PATH.name
    out.write_text(json.dumps(doc), "utf-8")
    return out


def test_an_edited_array_is_refused(tmp_path: Path) -> None:
    def edit(doc: dict[str, dict[str, str]]) -> None:
        out = np.frombuffer(base64.b64decode(doc["arrays"]["out"]), dtype="<f4").copy()
        out[0] += 1.0
        doc["arrays"]["out"] = base64.b64encode(out.tobytes()).decode()

    with pytest.raises(ModelFileError, match="sha256"):
        st.load(_copy(tmp_path, edit))


def test_a_truncated_file_is_unreadable(tmp_path: Path) -> None:
    cut = tmp_path / "student.json"
    cut.write_bytes(st.STUDENT_PATH.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="unreadable") as info:
        st.load(cut)
    assert str(cut) in str(info.value)


SEED = Path(__file__).resolve().parents[2] / "seeds" / "seed-article.txt"


def _seed() -> tuple[str, str]:
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    return title, body.strip()


def test_a_full_article_keeps_the_linear_stage_as_a_floor() -> None:
    """The student learned from feed snippets; on a full article the linear stage's reading
    of the lead still counts, so full-article recall cannot fall below 12.4's."""
    from worker.classify.learned import full_article_second_look, is_full_article
    from worker.classify.weights import english_model

    title, body = _seed()
    assert is_full_article(body)
    a = analyse(title, body)
    second = full_article_second_look(a, model_features(a), title, body, english_model())
    assert second is not None
    tag, score = second
    assert tag == f"lead_linear score={score:.4f}"
    assert score >= english_model().threshold


def test_a_feed_snippet_is_decided_by_the_student_alone() -> None:
    """Short texts (feed items, what the release gate measures) get no second look."""
    from worker.classify.learned import full_article_second_look, is_full_article
    from worker.classify.weights import english_model

    title, body = _seed()
    snippet = body[:1_200]
    assert not is_full_article(snippet)
    a = analyse(title, snippet)
    assert full_article_second_look(a, model_features(a), title, snippet, english_model()) is None
