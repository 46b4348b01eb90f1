"""The committed evaluation labels keep the promises docs/classifier.md makes about them.

Why: the held-out figures are only worth something if no dev item is a copy of a test item
and the extra dev sample is the one the documented procedure draws.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
LABELS = REPO_ROOT / "eval" / "labels"

pytestmark = pytest.mark.skipif(not DATA_DIR.is_dir(), reason="../shared/data not available")


@pytest.mark.parametrize(
    ("name", "salt", "labelled_before"),
    [
        ("rss_link_db_2023_extra2", "extra2-20261201", ("rss_link_db_2023_extra",)),
        (
            "rss_link_db_2023_extra3",
            "extra3-20261201",
            ("rss_link_db_2023_extra", "rss_link_db_2023_extra2"),
        ),
    ],
)
def test_extra_labels_are_exactly_the_documented_draw(
    name: str, salt: str, labelled_before: tuple[str, ...]
) -> None:
    from eval.sample_extra import draw

    with (LABELS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    sample = draw(
        DATA_DIR,
        salt,
        {"ukr+sec": 400, "ukr_only": 600, "sec_only": 400, "other": 200},
        labelled_before,
    )
    assert {(str(d["link"]), str(d["stratum"])) for d in sample} == {
        (r["id"], r["stratum"]) for r in rows
    }
    assert len(rows) == 1600
    assert {r["split"] for r in rows} == {"dev"}
    assert {r["label"] for r in rows} == {"0", "1"}


def test_no_dev_item_repeats_a_test_item() -> None:
    from eval.classifier_eval import load_items
    from eval.sample_extra import text_key

    items = list(load_items(DATA_DIR))
    test_texts = {
        text_key(t) for i in items if i.split == "test" for t in (i.title, i.body) if text_key(t)
    }
    test_ids = {(i.source, i.id) for i in items if i.split == "test"}
    for item in items:
        if item.split == "dev" and item.source.startswith("rss_link_db_2023"):
            assert (item.source, item.id) not in test_ids
            assert text_key(item.title) not in test_texts, item.title
    splits = {i.split for i in items}
    assert splits == {"dev", "test", "external"}
    assert sum(1 for i in items if i.split == "test") == 484
