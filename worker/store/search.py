"""Full-text search in SQL: a parsed search (:mod:`worker.search`) as a filter and a
relevance rank, on either database. Reads only; the index is kept by triggers
(migration 0004), not by the writers in this package.

Both ranks put a title match above a summary match above a body match (weights 5 : 2 : 1
on SQLite, PostgreSQL's default A/B/C weights 1.0 : 0.4 : 0.2), and a higher rank is
better on both, so a cursor compares them the same way.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlmodel import Session, col

from ..models import Article
from ..search import FTS_TABLE, LANGUAGE_CONFIGS, SIMPLE_CONFIG, VECTOR_COLUMN, SearchQuery

BM25_WEIGHTS = (5.0, 2.0, 1.0)
"""SQLite: title, summary, body, in the FTS5 table's column order."""

_FTS = sa.table(FTS_TABLE, sa.column("rowid", sa.Integer))
_FTS_NAME: sa.ColumnClause[Any] = sa.literal_column(FTS_TABLE)
_VECTOR = sa.literal_column(f"articles.{VECTOR_COLUMN}", TSVECTOR)


def apply_search(session: Session, query: Any, search: SearchQuery) -> tuple[Any, Any]:
    """``query`` (a select of articles) narrowed to the articles ``search`` finds, and
    the rank expression of each (higher is more relevant)."""
    if session.get_bind().dialect.name == "postgresql":
        return _postgres(query, search)
    return _sqlite(query, search)


def _sqlite(query: Any, search: SearchQuery) -> tuple[Any, Any]:
    # bm25() is lower for better matches; negated, a higher rank is better, as on PostgreSQL.
    rank = -sa.func.bm25(_FTS_NAME, *BM25_WEIGHTS, type_=sa.Float)
    query = query.join(_FTS, _FTS.c.rowid == col(Article.id)).where(
        _FTS_NAME.op("MATCH")(search.fts5())
    )
    return query, rank


def _configs() -> dict[str, list[str]]:
    """The language codes of each stemming configuration."""
    codes: dict[str, list[str]] = {}
    for code, config in sorted(LANGUAGE_CONFIGS.items()):
        codes.setdefault(config, []).append(code)
    return codes


def _postgres(query: Any, search: SearchQuery) -> tuple[Any, Any]:
    """Each article is matched and ranked against the query parsed with its own
    language's configuration (``articles_search_config``): a query stems the way the
    article's text was stemmed, so an exact word always matches and so do its other
    forms within a language, and ``-word`` excludes every form of it.

    The per-article query is a CASE, which no index can serve. The index condition is
    the OR of the query under every configuration, a superset of what the CASE
    matches, which the GIN index answers in one scan. Its duplicate branches are
    removed first (most configurations parse most words alike): the planner estimates
    an OR of n equal branches as far likelier than one, and chose a sequential scan of
    the whole table for a common word, several times slower than the index.
    """
    text = sa.bindparam("search_text", search.websearch(), type_=sa.Text)

    def parsed(config: str) -> Any:
        return sa.func.websearch_to_tsquery(
            sa.literal_column(f"'{config}'::regconfig"), text, type_=TSQUERY
        )

    configs = _configs()
    per_article = sa.case(
        *((col(Article.language).in_(codes), parsed(config)) for config, codes in configs.items()),
        else_=parsed(SIMPLE_CONFIG),
    )
    branch = sa.cast(
        sa.func.unnest(
            postgresql.array([parsed(SIMPLE_CONFIG), *(parsed(config) for config in configs)])
        ).column_valued("branch"),
        sa.Text,
    )
    # A query with no lexeme in some configuration (only its stop words) parses to an
    # empty tsquery, whose text '' is not a branch.
    every = (
        sa.select(sa.cast(sa.func.string_agg(sa.distinct("(" + branch + ")"), " | "), TSQUERY))
        .where(branch != "")
        .scalar_subquery()
    )
    query = query.where(_VECTOR.op("@@")(every), _VECTOR.op("@@")(per_article))
    # ts_rank is a float4, which the driver reads from its shortest decimal text: a
    # cursor holding that decimal would not compare equal to the float4 again. As a
    # float8 the value round-trips exactly.
    return query, sa.cast(sa.func.ts_rank(_VECTOR, per_article), sa.Double)
