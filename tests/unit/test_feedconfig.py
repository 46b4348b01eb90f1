"""The operator's feed file: the shipped one is valid, bad ones fail with a location."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.feedconfig import FeedConfigError, load_feed_specs

CONFIG = Path(__file__).resolve().parents[2] / "config" / "feeds.toml"


def test_shipped_feed_list_is_valid() -> None:
    specs = load_feed_specs(CONFIG)
    assert len(specs) >= 15
    names = {s.name for s in specs}
    assert {"kyiv-independent", "ukrainska-pravda-en", "bbc-world", "nato-news"} <= names
    assert all(s.url.startswith("https://") for s in specs)
    # Every feed names its language, and the desk's Ukrainian- and Russian-language outlets
    # are watched, not only English ones; the seed article's outlet too.
    assert all(s.language for s in specs)
    by_language = {lang: {s.name for s in specs if s.language == lang} for lang in ("uk", "ru")}
    assert len(by_language["uk"]) >= 3
    assert len(by_language["ru"]) >= 2
    assert "caliber-az-en" in names


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not toml [", "not valid TOML"),
        ("title = 'x'", "expected one or more [[feed]]"),
        ('[[feed]]\nname = "a"\nurl = "ftp://x/feed"', "feed #1: url"),
        ('[[feed]]\nname = "a"\nurl = "https://x/feed"\ncolour = "red"', "feed #1: colour"),
        ('[[feed]]\nname = "a b"\nurl = "https://x/feed"', "feed #1: name"),
        (
            '[[feed]]\nname = "a"\nurl = "https://x/1"\n[[feed]]\nname = "a"\nurl = "https://x/2"',
            "duplicate",
        ),
        ('[[feed]]\nname = "a"\nurl = "https://x/1"\npoll_interval_seconds = 1', "feed #1"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text)
    with pytest.raises(FeedConfigError, match=fragment.replace("[", r"\[")):
        load_feed_specs(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FeedConfigError, match="no such file"):
        load_feed_specs(tmp_path / "absent.toml")
