"""change_log: a gap-safe change feed of articles, stories and feeds

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 12:00:00

Triggers on ``articles``, ``stories`` and ``feeds`` append one row per inserted, updated
or deleted row to ``change_log``, in the writer's own transaction and with no position:
the change is logged if and only if it commits, whichever code (ORM, Core bulk update,
an operator's SQL) made it. ``worker.store.changes`` gives committed rows their
positions later, under a lock (docs/schema.md, "Change feed", says why that is gap-safe).

A ``feeds`` update is logged unless it sets only the poll bookkeeping columns
``next_poll_at``, ``lease_owner`` and ``lease_until`` (the beat's claim and the per-poll
lease): the trigger fires ``UPDATE OF`` every other column, listed in ``FEED_COLUMNS``.
A later migration that adds a feeds column must recreate ``change_log_feed_update``
with it (``tests/integration/test_changes.py`` fails until it does), and one that makes
SQLite copy ``articles``, ``stories`` or ``feeds`` (Alembic's batch "recreate" mode:
dropping or altering a column) must create that table's triggers again, because SQLite
drops a table's triggers with the table.

Existing rows are logged as inserts, so a consumer that starts at position 0 on an
upgraded database gets every row, as on a new one.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel types)
from alembic import op

import worker.models  # noqa: F401  (UTCDateTime column type)

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {'article': 'articles', 'story': 'stories', 'feed': 'feeds'}

FEED_COLUMNS = (
    'name', 'url', 'site_url', 'title', 'language', 'tags', 'enabled', 'state',
    'poll_interval_seconds', 'etag', 'last_modified', 'last_body_hash', 'conditional_get',
    'last_polled_at', 'last_success_at', 'first_failure_at', 'error_count', 'last_error',
    'last_error_class', 'last_http_status', 'ttl_seconds', 'publish_interval_seconds',
    'created_at', 'updated_at',
)
"""Every feeds column but id and the poll bookkeeping (next_poll_at, lease_owner, lease_until)."""

# SQLite: the wall clock to the microsecond in the text form UTCDateTime stores
# ('now' is read once per statement, to the millisecond).
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"

# PostgreSQL: the time of the change itself, not of the transaction's start (now()).
PG_FUNCTION = """
CREATE FUNCTION change_log_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_log (kind, entity_id, op, changed_at)
        VALUES (TG_ARGV[0], OLD.id, 'delete', clock_timestamp());
    ELSE
        INSERT INTO change_log (kind, entity_id, op, changed_at)
        VALUES (TG_ARGV[0], NEW.id, lower(TG_OP), clock_timestamp());
    END IF;
    RETURN NULL;
END
$$
"""


def _triggers(dialect: str) -> list[str]:
    """One trigger per table and operation, named change_log_<kind>_<op>."""
    statements = []
    for kind, table in TABLES.items():
        for event in ('insert', 'update', 'delete'):
            name = f'change_log_{kind}_{event}'
            when = event.upper()
            if kind == 'feed' and event == 'update':
                when = f"UPDATE OF {', '.join(FEED_COLUMNS)}"
            if dialect == 'postgresql':
                statements.append(
                    f"CREATE TRIGGER {name} AFTER {when} ON {table} FOR EACH ROW "
                    f"EXECUTE FUNCTION change_log_record('{kind}')"
                )
            else:
                row = 'OLD' if event == 'delete' else 'NEW'
                statements.append(
                    f"CREATE TRIGGER {name} AFTER {when} ON {table} FOR EACH ROW BEGIN "
                    f"INSERT INTO change_log (kind, entity_id, op, changed_at) "
                    f"VALUES ('{kind}', {row}.id, '{event}', {SQLITE_NOW}); END"
                )
    return statements


def upgrade() -> None:
    op.create_table('change_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('op', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('changed_at', worker.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('change_log', schema=None) as batch_op:
        batch_op.create_index('ix_change_log_position', ['position'], unique=True)

    state = op.create_table('change_log_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_position', sa.BigInteger(), nullable=False),
    sa.Column('horizon', sa.BigInteger(), nullable=False),
    sa.Column('pruned_at', worker.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(state, [{'id': 1, 'last_position': 0, 'horizon': 0, 'pruned_at': None}])

    dialect = op.get_bind().dialect.name
    now = 'clock_timestamp()' if dialect == 'postgresql' else SQLITE_NOW
    for kind in ('feed', 'story', 'article'):  # feeds before the articles that name them
        op.execute(
            f"INSERT INTO change_log (kind, entity_id, op, changed_at) "
            f"SELECT '{kind}', id, 'insert', {now} FROM {TABLES[kind]} ORDER BY id"
        )
    if dialect == 'postgresql':
        op.execute(PG_FUNCTION)
    for statement in _triggers(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for kind, table in TABLES.items():
        for event in ('insert', 'update', 'delete'):
            on = f' ON {table}' if dialect == 'postgresql' else ''
            op.execute(f'DROP TRIGGER IF EXISTS change_log_{kind}_{event}{on}')
    if dialect == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS change_log_record()')
    op.drop_table('change_log_state')
    with op.batch_alter_table('change_log', schema=None) as batch_op:
        batch_op.drop_index('ix_change_log_position')
    op.drop_table('change_log')
