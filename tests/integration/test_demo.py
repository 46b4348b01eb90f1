"""`ingest demo`, the README's first command, through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_classifies_the_seed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", "--workdir", str(tmp_path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    seed = rows[0]
    assert seed["title"].startswith("Media: French president")
    assert seed["is_ukraine_security"] is True
    assert seed["security_score"] >= 0.8
    assert {"security_guarantees", "peacekeeping_force"} <= set(seed["topics"])
    assert seed["extraction_method"] == "trafilatura"
    assert (tmp_path / "demo.db").exists()
