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


EXTRA_STRATA = {"ukr+sec": 400, "ukr_only": 600, "sec_only": 400, "other": 200}


@pytest.mark.parametrize(
    ("name", "salt", "labelled_before", "per_stratum", "split"),
    [
        (
            "rss_link_db_2023_extra2",
            "extra2-20261201",
            ("rss_link_db_2023_extra",),
            EXTRA_STRATA,
            "dev",
        ),
        (
            "rss_link_db_2023_extra3",
            "extra3-20261201",
            ("rss_link_db_2023_extra", "rss_link_db_2023_extra2"),
            EXTRA_STRATA,
            "dev",
        ),
        (
            "rss_link_db_2023_extra4",
            "extra4-20261203",
            (
                "rss_link_db_2023_extra",
                "rss_link_db_2023_extra2",
                "rss_link_db_2023_extra3",
                "rss_link_db_2023_test2",
                "rss_link_db_2023_test3",
            ),
            {"ukr+sec": 0, "ukr_only": 1200, "sec_only": 500, "other": 300},
            "dev",
        ),
        (
            "rss_link_db_2023_test4",
            "holdout4-20261204",
            (
                "rss_link_db_2023_extra",
                "rss_link_db_2023_extra2",
                "rss_link_db_2023_extra3",
                "rss_link_db_2023_extra4",
                "rss_link_db_2023_test2",
                "rss_link_db_2023_test3",
            ),
            {"ukr+sec": 0, "ukr_only": 600, "sec_only": 250, "other": 150},
            "test4",
        ),
        (
            "rss_link_db_2023_test3",
            "holdout3-20261203",
            (
                "rss_link_db_2023_extra",
                "rss_link_db_2023_extra2",
                "rss_link_db_2023_extra3",
                "rss_link_db_2023_test2",
            ),
            {"ukr+sec": 26, "ukr_only": 524, "sec_only": 300, "other": 150},
            "test3",
        ),
        (
            "rss_link_db_2023_test2",
            "holdout2-20261201",
            ("rss_link_db_2023_extra", "rss_link_db_2023_extra2", "rss_link_db_2023_extra3"),
            {"ukr+sec": 300, "ukr_only": 450, "sec_only": 300, "other": 150},
            "test2",
        ),
    ],
)
def test_sampled_labels_are_exactly_the_documented_draw(
    name: str,
    salt: str,
    labelled_before: tuple[str, ...],
    per_stratum: dict[str, int],
    split: str,
) -> None:
    from eval.sample_extra import draw

    with (LABELS / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    sample = draw(DATA_DIR, salt, per_stratum, labelled_before)
    assert {(str(d["link"]), str(d["stratum"])) for d in sample} == {
        (r["id"], r["stratum"]) for r in rows
    }
    assert len(rows) == sum(per_stratum.values())
    assert {r["split"] for r in rows} == {split}
    assert {r["label"] for r in rows} == {"0", "1"}


def test_no_dev_item_repeats_a_held_out_item() -> None:
    from eval.classifier_eval import load_items
    from eval.sample_extra import text_key

    items = list(load_items(DATA_DIR))
    held_out = [i for i in items if i.split in ("test", "test2", "test3", "test4")]
    held_texts = {text_key(t) for i in held_out for t in (i.title, i.body) if text_key(t)}
    held_ids = {i.id for i in held_out if i.source.startswith("rss_link_db_2023_")}
    for item in items:
        if item.split == "dev" and item.source.startswith("rss_link_db_2023"):
            assert item.id not in held_ids
            assert text_key(item.title) not in held_texts, item.title
            assert text_key(item.body) not in held_texts or not text_key(item.body), item.title
    splits = {i.split for i in items}
    assert splits == {"dev", "test", "test2", "test3", "test4", "external", "ml_dev", "ml_test"}
    assert sum(1 for i in items if i.split == "test") == 484
    test2 = [i for i in items if i.split == "test2"]
    assert len(test2) == 1200
    assert {i.stratum for i in test2} == {"ukr+sec", "ukr_only", "sec_only", "other"}
    assert sum(1 for i in items if i.split == "test3") == 1000
    assert sum(1 for i in items if i.split == "test4") == 1000
    ml_test = [i for i in items if i.split == "ml_test"]
    assert sum(1 for i in ml_test if i.language == "uk") == 400
    assert sum(1 for i in ml_test if i.language == "ru") == 600


def test_multilingual_labels_are_exactly_the_documented_draw() -> None:
    from eval.sample_multilingual import draw

    with (LABELS / "multilingual.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    sample = draw(DATA_DIR)
    # ml_dev2 items joined ml_dev (eval/labels/MULTILINGUAL_PLAN.md, addendum)
    drawn = {
        str(d["id"]): ("ml_dev" if d["split"] == "ml_dev2" else str(d["split"]), str(d["stratum"]))
        for d in sample
    }
    assert {k: (r["split"], r["stratum"]) for k, r in rows.items()} == drawn
    assert {r["label"] for r in rows.values()} == {"0", "1"}
