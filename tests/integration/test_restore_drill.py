"""The backup and restore drill (``bench/restore_drill.py``, small size) on both databases.

Real worker and beat processes store articles from a local news web; the backup is
taken while they write; ``ingest db restore`` puts it into a fresh database (a new
SQLite file; an empty database of a second PostgreSQL cluster); new workers and beat
resume there. Nothing any feed listed may be lost, pending or stored twice, and the
restored id sequences must be past every id. SQLite starts the new deployment on a
flushed queue, as docs/operations.md says to; PostgreSQL keeps the old queue, whose
messages name rows by id, to show that they do no harm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.newsweb import Page, load_pages
from bench.restore_drill import SHORT, DrillReport, run_drill, sequences_behind
from tests.support import services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[Page]:
    return load_pages(shared_data)


@pytest.fixture
def fresh_postgres() -> Iterator[services.PostgresServer]:
    """A second PostgreSQL cluster of its own, to restore into."""
    try:
        server = services.start_postgres()
    except services.ServiceUnavailableError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


def assert_resumed(report: DrillReport) -> None:
    """The drill's invariants, with the report in the message when one fails."""
    assert report.lost == 0, report
    assert report.duplicated == 0, report
    assert report.pending == 0, report
    assert report.unexpected == 0, report
    assert report.failed_without_reason == 0, report
    assert report.miscounted_stories == 0, report
    assert report.sequences_behind == [], report
    assert report.stored + report.failed == report.entries, report
    assert report.failed >= 1, report  # the dead links, each failed with its reason
    # The drill really tested something: the backup held work in flight, and the old
    # database had entries the backup missed, found again by polling.
    assert report.backup_pending > 0, report
    assert report.old_only_entries > 0, report
    assert report.swept > 0, report


def test_sqlite_backup_restored_into_a_new_file_resumes(
    pages: list[Page], broker_url: str, tmp_path: Path
) -> None:
    report = run_drill(
        database="sqlite",
        source_url=f"sqlite:///{tmp_path / 'live.db'}",
        target_url=f"sqlite:///{tmp_path / 'restored.db'}",
        broker_url=broker_url,
        workdir=tmp_path,
        pages=pages,
        size=SHORT,
        keep_queue=False,
    )
    print(report)
    assert_resumed(report)


def test_postgres_dump_restored_into_a_fresh_cluster_resumes(
    pages: list[Page],
    broker_url: str,
    postgres_server: services.PostgresServer,
    fresh_postgres: services.PostgresServer,
    tmp_path: Path,
) -> None:
    report = run_drill(
        database="postgresql",
        source_url=postgres_server.create_database("drill_source"),
        target_url=fresh_postgres.create_database("ingest"),
        broker_url=broker_url,
        workdir=tmp_path,
        pages=pages,
        size=SHORT,
        keep_queue=True,
    )
    print(report)
    assert report.old_messages > 0, report  # the kept queue held the old deployment's work
    assert_resumed(report)
    # The sequence check is not vacuous: a sequence set back is reported.
    target = fresh_postgres.url("ingest")
    engine = sa.create_engine(target)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('entries', 'id'), 1)"))
    engine.dispose()
    assert [name for name in sequences_behind(target) if "entries" in name] == ["entries_id_seq"]
