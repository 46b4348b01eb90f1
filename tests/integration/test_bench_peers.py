"""bench/peers.py on a tiny web: ours and the plain script side by side, scored alike.

The news-please peer needs the peers' venv (scripts/peers-venv.sh), which CI
does not build; the plain script needs only feedparser, httpx and trafilatura,
which the project's own interpreter has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.bench import run_bench_main

pytestmark = pytest.mark.integration


def test_peers_bench_ours_and_plain(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.peers import main

    out = tmp_path / "peers.json"
    args = ["--feeds", "3", "--fetches", "24", "--tools", "ours,plain"]
    args += ["--peers-python", sys.executable, "--data-dir", str(shared_data), "--out", str(out)]
    assert run_bench_main(main, args, tmp_path=tmp_path, monkeypatch=monkeypatch) == 0
    result = json.loads(out.read_text())
    ours, plain = result["tools"]
    repeats = result["plan"]["repeats"]
    assert repeats > 0
    # The plain script stores every feed item, a repeated URL once per feed.
    assert plain["score"]["stored"] == 24
    assert plain["score"]["same_url_again"] == repeats
    # Ours fetches or links every item but stores each URL once.
    assert ours["articles"] == 24
    assert ours["score"]["stored"] == 24 - repeats
    assert ours["score"]["same_url_again"] == 0
    for row in (ours, plain):
        assert row["score"]["mean_f1"] > 0.8
        assert row["articles_per_s"] > 0
        assert row["cpu_ms_per_article"] > 0
        assert row["peak_rss_mb"] > 20
