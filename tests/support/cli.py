"""Run the ``ingest`` CLI in-process and catch the exit its settings checks make."""

from __future__ import annotations

import pytest


def exit_of_ingest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int | str | None, str]:
    """Run ``ingest ARGV`` with settings read afresh (and reset after), expecting it to
    exit; returns the exit code and what it wrote to stderr."""
    from worker.cli import main
    from worker.settings import reset_settings

    monkeypatch.setattr("sys.argv", ["ingest", *argv])
    reset_settings()
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        reset_settings()
    return exit_.value.code, capsys.readouterr().err
