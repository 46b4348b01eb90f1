"""INGEST_<NAME>_FILE: a setting's value read from a file (compose secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import exit_of_ingest
from worker.settings import Settings, SettingsFileError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "API_TOKEN", "HOST_RATES", "ALLOW_PRIVATE_NETWORKS"):
        monkeypatch.delenv(f"INGEST_{name}", raising=False)
        monkeypatch.delenv(f"INGEST_{name}_FILE", raising=False)


def secret(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_values_come_from_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One trailing line break (what `echo` writes) is dropped; the rest is the value."""
    url = "postgresql+psycopg://ingest:p%40ss word@postgres:5432/ingest"
    monkeypatch.setenv("INGEST_DATABASE_URL_FILE", secret(tmp_path, "db", url + "\n"))
    monkeypatch.setenv("INGEST_API_TOKEN_FILE", secret(tmp_path, "token", " tok en \r\n"))
    settings = Settings()
    assert settings.database_url == url
    assert settings.api_token == " tok en "


def test_structured_values_are_parsed_as_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_HOST_RATES_FILE", secret(tmp_path, "r", '{"a.example": 0.5}'))
    monkeypatch.setenv("INGEST_ALLOW_PRIVATE_NETWORKS_FILE", secret(tmp_path, "n", "10.0.0.0/8"))
    settings = Settings()
    assert settings.host_rates == {"a.example": 0.5}
    assert settings.allow_private_networks == ["10.0.0.0/8"]


def test_an_unreadable_file_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a silent fallback to the default (SQLite, no token)."""
    missing = tmp_path / "nope.txt"
    monkeypatch.setenv("INGEST_DATABASE_URL_FILE", str(missing))
    with pytest.raises(SettingsFileError) as error:
        Settings()
    assert str(error.value) == (
        f"INGEST_DATABASE_URL_FILE: cannot read {missing}: No such file or directory"
    )
    monkeypatch.setenv("INGEST_DATABASE_URL_FILE", str(tmp_path))
    with pytest.raises(SettingsFileError, match="INGEST_DATABASE_URL_FILE: cannot read"):
        Settings()
    monkeypatch.setenv("INGEST_DATABASE_URL_FILE", secret(tmp_path, "bin", ""))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(SettingsFileError, match="INGEST_DATABASE_URL_FILE: cannot read"):
        Settings()


def test_both_the_variable_and_its_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_API_TOKEN", "from-env")
    monkeypatch.setenv("INGEST_API_TOKEN_FILE", secret(tmp_path, "t", "from-file"))
    with pytest.raises(SettingsFileError, match="INGEST_API_TOKEN and INGEST_API_TOKEN_FILE"):
        Settings()


def test_bad_json_in_a_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_HOST_RATES_FILE", secret(tmp_path, "r", "{not json"))
    with pytest.raises(SettingsFileError, match=r"INGEST_HOST_RATES_FILE: .* is not JSON"):
        Settings()


def test_the_cli_refuses_an_unreadable_file_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line on stderr and exit 2 before any command runs, not a traceback."""
    monkeypatch.setenv("INGEST_API_TOKEN_FILE", str(tmp_path / "[missing]"))
    code, err = exit_of_ingest(monkeypatch, capsys, "health")
    assert code == 2
    assert "error: INGEST_API_TOKEN_FILE: cannot read" in err
    assert "[missing]" in err.replace("\n", "")  # the path, its brackets not read as markup
    assert "Traceback" not in err
