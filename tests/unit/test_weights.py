"""The learned stages' weights files (worker.classify.weights): shipped, checksummed, verified."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.classify import load_models
from worker.classify import weights as w

SHIPPED = [
    pytest.param(w.ENGLISH_PATH, (), id="english"),
    pytest.param(w.CYRILLIC_PATH, (), id="cyrillic"),
    pytest.param(w.NEIGHBOURS_PATH, ("k",), id="neighbours"),
]


def _clear_caches() -> None:
    w.english_model.cache_clear()
    w.cyrillic_model.cache_clear()
    w.neighbours_model.cache_clear()


@pytest.fixture
def fresh_models() -> Iterator[None]:
    """The test loads the weights files itself and leaves no damaged model cached."""
    _clear_caches()
    yield
    _clear_caches()


def _copy(path: Path, tmp_path: Path, edit: Callable[[dict[str, object]], None]) -> Path:
    doc = json.loads(path.read_text("utf-8"))
    edit(doc)
    out = tmp_path / path.name
    out.write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return out


@pytest.mark.parametrize(("path", "params"), SHIPPED)
def test_each_shipped_file_loads_and_is_small_plain_data(
    path: Path, params: tuple[str, ...]
) -> None:
    model = w.load(path, params=params)
    assert 0 < len(model.weights) <= 5_000
    assert all(isinstance(v, float) for v in model.weights.values())
    assert 0.0 < model.threshold < 1.0
    assert model.trained_on
    assert path.stat().st_size < 1_000_000


def test_the_shipped_stages_are_the_ones_the_worker_reads(fresh_models: None) -> None:
    assert "ml_dev" in w.cyrillic_model().trained_on
    assert "dev" in w.english_model().trained_on
    assert w.neighbours_model().params["k"] in (5, 15)  # the trainer's grid
    assert {n for n in w.neighbours_model().weights if n.startswith("nn:")} == {
        "nn:vote",
        "nn:share",
        "nn:margin",
    }
    assert not {n for n in w.english_model().weights if n.startswith("nn:")}


@pytest.mark.parametrize(("path", "params"), SHIPPED)
def test_a_hand_edited_weight_is_refused_naming_the_file(
    path: Path, params: tuple[str, ...], tmp_path: Path
) -> None:
    def edit(doc: dict[str, object]) -> None:
        weights = doc["weights"]
        assert isinstance(weights, dict)
        weights[next(iter(weights))] += 1.0

    tampered = _copy(path, tmp_path, edit)
    with pytest.raises(w.ModelFileError, match="sha256") as info:
        w.load(tampered, params=params)
    assert str(tampered) in str(info.value)


@pytest.mark.parametrize("field", ["bias", "threshold"])
def test_an_edited_bias_or_threshold_is_refused(field: str, tmp_path: Path) -> None:
    def edit(doc: dict[str, object]) -> None:
        value = doc[field]
        assert isinstance(value, float)
        doc[field] = value + 0.01

    with pytest.raises(w.ModelFileError, match="sha256"):
        w.load(_copy(w.ENGLISH_PATH, tmp_path, edit))


def test_the_checksum_covers_the_neighbour_count(tmp_path: Path) -> None:
    def edit(doc: dict[str, object]) -> None:
        doc["params"] = {"k": 5}

    with pytest.raises(w.ModelFileError, match="sha256"):
        w.load(_copy(w.NEIGHBOURS_PATH, tmp_path, edit), params=("k",))


def test_a_missing_parameter_is_refused(tmp_path: Path) -> None:
    def edit(doc: dict[str, object]) -> None:
        del doc["params"]

    with pytest.raises(w.ModelFileError, match=r"\['k'\] missing"):
        w.load(_copy(w.NEIGHBOURS_PATH, tmp_path, edit), params=("k",))


def test_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    def edit(doc: dict[str, object]) -> None:
        doc["sha256"] = "0" * 64

    damaged = _copy(w.CYRILLIC_PATH, tmp_path, edit)
    with pytest.raises(w.ModelFileError, match="do not match their sha256") as info:
        w.load(damaged)
    assert str(damaged) in str(info.value)


@pytest.mark.parametrize(("path", "params"), SHIPPED)
def test_a_truncated_file_is_unreadable(
    path: Path, params: tuple[str, ...], tmp_path: Path
) -> None:
    cut = tmp_path / path.name
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(w.ModelFileError, match="unreadable") as info:
        w.load(cut, params=params)
    assert str(cut) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "[]", '{"weights": {}, "bias": 0.0, "threshold": 0.5}', '{"weights": [1, 2]}'],
    ids=["empty", "not an object", "no checksum", "weights not a mapping"],
)
def test_malformed_files_are_unreadable(text: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text, "utf-8")
    with pytest.raises(w.ModelFileError, match="unreadable"):
        w.load(bad)


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(w.ModelFileError, match="unreadable"):
        w.load(tmp_path / "absent.json")


def test_write_produces_what_load_reads(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    weights = {"r:score": 1.25, "w:kyiv": -0.0001, "lx:ctx:путин\\w*": 0.5}
    w.write(
        out,
        weights=weights,
        bias=-1.5,
        threshold=0.7,
        params={"k": 15},
        provenance={"trained_on": "dev: 3 items, 1 positive", "config": "test"},
    )
    model = w.load(out, params=("k",))
    assert model == w.LinearModel(weights, -1.5, 0.7, {"k": 15}, "dev: 3 items, 1 positive")


def test_the_shipped_cyrillic_file_is_exactly_what_the_writer_writes(tmp_path: Path) -> None:
    """The trainers write through ``write``: its format is the one the files are in."""
    model = w.load(w.CYRILLIC_PATH)
    doc = json.loads(w.CYRILLIC_PATH.read_text("utf-8"))
    out = tmp_path / "cyrillic.json"
    w.write(
        out,
        weights=model.weights,
        bias=model.bias,
        threshold=model.threshold,
        provenance={key: doc[key] for key in ("trained_on", "config", "cv")},
    )
    assert out.read_bytes() == w.CYRILLIC_PATH.read_bytes()


def test_load_models_reads_the_neighbour_weights_only_for_that_method(
    fresh_models: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w, "NEIGHBOURS_PATH", tmp_path / "absent.json")
    load_models("hybrid")
    with pytest.raises(w.ModelFileError, match=r"absent\.json"):
        load_models("neighbours")
    with pytest.raises(ValueError, match="unknown classifier method"):
        load_models("bert")
