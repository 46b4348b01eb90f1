"""The distillation experiment's student file (worker/classify/student.py): round trip, checksum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.classify import student as st
from worker.classify.weights import ModelFileError


def _write(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "linear": rng.normal(size=3),
        "hidden": rng.normal(size=(3, 2)),
        "hidden_bias": rng.normal(size=2),
        "out": rng.normal(size=2),
    }
    st.write(
        path,
        features=["r:score", "w:kyiv", "w:drone"],
        arrays=arrays,
        bias=-0.5,
        threshold=0.7,
        provenance={"trained_on": "test"},
    )
    return arrays


def test_a_written_student_loads_and_computes_the_documented_formula(tmp_path: Path) -> None:
    path = tmp_path / "student.json"
    arrays = _write(path)
    model = st.load(path)
    x = {"r:score": 0.8, "w:drone": 1.0, "w:unknown": 1.0}
    idx, val = [0, 2], np.array([0.8, 1.0])
    hidden = np.maximum(arrays["hidden_bias"] + val @ arrays["hidden"][idx], 0.0)
    expected = -0.5 + val @ arrays["linear"][idx] + hidden @ arrays["out"]
    z, contributions = model.logit(x)
    assert z == pytest.approx(expected, abs=1e-5)  # stored as float32
    assert {name for _, name in contributions} == {"r:score", "w:drone", "mlp:hidden"}
    assert 0.0 < model.probability(x) < 1.0


def test_an_edited_threshold_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "student.json"
    _write(path)
    doc = json.loads(path.read_text("utf-8"))
    doc["threshold"] = 0.5
    path.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(ModelFileError, match="sha256"):
        st.load(path)
