"""The article search language: parsed once here, rendered for each database.

The syntax is PostgreSQL's ``websearch_to_tsquery`` syntax, the one readers know from
search boxes:

* ``word word``: every word must appear (AND); ``"quoted words"``: that phrase;
* ``-word``, ``-"a phrase"``: must not appear;
* ``a b OR c d``: either side. As in PostgreSQL, ``OR`` splits the query into
  alternatives (``(a AND b) OR (c AND d)``); it does not bind two single words, and
  there are no parentheses.

Everything else is text: ``*``, ``:``, ``(``, ``NEAR``, ``title:`` and other query
operators of FTS5 or tsquery are searched for as words, never obeyed, so no input can
make the database raise a syntax error or widen the search. Each term is handed to
the database as a quoted phrase, which its own tokenizer splits into words.

Why one parser and not the raw string on PostgreSQL: SQLite's FTS5 has its own query
language, and the two databases must answer the same question. Rendering PostgreSQL's
input from the parsed query (:meth:`SearchQuery.websearch`) keeps the corner cases
(a stray ``OR``, an unclosed quote, a negated alternative) decided once, here.

Refused, with a reason (:class:`QueryError`): a query with no word to search for
(``!!!``, ``""``) and an alternative made only of negations (``-war``, ``a OR -b``). The
latter would be "every article except ...", a scan of the whole table on both
databases that no reader means. A blank query is no query (:func:`parse_query` returns
None): the listing is not filtered.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MAX_QUERY_CHARS = 500
"""Longer queries are refused: they are not searches a person types, and each term
costs a lookup per text-search configuration on PostgreSQL."""

LANGUAGE_CONFIGS: dict[str, str] = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nb": "norwegian",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
"""PostgreSQL text-search configuration (stemmer and stop words) per ``articles.language``
code. Every other language (Ukrainian has no built-in stemmer), and articles of unknown
language, use ``simple``: words are lower-cased, not stemmed. Only configurations built
into every PostgreSQL since 8.3 are named. Migration 0004 holds a frozen copy in SQL
(``articles_search_config``); ``tests/integration/test_search.py`` checks they agree."""

SIMPLE_CONFIG = "simple"

FTS_TABLE = "articles_fts"
"""SQLite: the FTS5 table over ``articles`` (title, summary, body), kept by triggers."""
VECTOR_COLUMN = "search_vector"
"""PostgreSQL: ``articles.search_vector``, kept by a trigger."""
VECTOR_INDEX = "ix_articles_search"
"""PostgreSQL: the GIN index on ``articles.search_vector``."""


def is_index_object(type_: str, name: str | None) -> bool:
    """Whether a reflected schema object is part of the search index (migration 0004)
    rather than of the models: the FTS5 table and its shadow tables, the tsvector
    column and its index. Alembic's comparisons skip these."""
    if name is None:
        return False
    if type_ == "table":
        return name == FTS_TABLE or name.startswith(f"{FTS_TABLE}_")
    if type_ == "column":
        return name == VECTOR_COLUMN
    if type_ == "index":
        return name == VECTOR_INDEX
    return False


class QueryError(ValueError):
    """A search the query language cannot run; the message says why, for the reader."""


@dataclass(frozen=True)
class Alternative:
    """Terms that must all appear (``include``, at least one) and none of ``exclude``."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: any one of ``alternatives`` matches."""

    alternatives: tuple[Alternative, ...]

    def fts5(self) -> str:
        """The query as an FTS5 MATCH expression.

        Each term is an FTS5 string (in double quotes, inner quotes doubled), which
        FTS5 reads as a phrase of the words its tokenizer finds there; operators and
        column filters inside a string are only text.
        """
        rendered = []
        for alternative in self.alternatives:
            expression = " AND ".join(_fts5_string(t) for t in alternative.include)
            if alternative.exclude:
                excluded = " OR ".join(_fts5_string(t) for t in alternative.exclude)
                expression = f"({expression}) NOT ({excluded})"
            rendered.append(f"({expression})")
        return " OR ".join(rendered)

    def websearch(self) -> str:
        """The query in ``websearch_to_tsquery`` syntax, every term quoted.

        A term never holds a double quote (the parser ends a phrase there), so a quoted
        term is a phrase to PostgreSQL whatever else it contains.
        """
        return " or ".join(
            " ".join([*(f'"{t}"' for t in a.include), *(f'-"{t}"' for t in a.exclude)])
            for a in self.alternatives
        )


def _fts5_string(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _clean(text: str) -> str:
    """Control characters become spaces and lone surrogates go: neither database
    takes a NUL, and a surrogate (from undecodable command-line bytes) cannot be sent."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            continue
        kept.append(" " if category == "Cc" else ch)
    return "".join(kept)


def _searchable(term: str) -> bool:
    """A term with no letter or digit holds no word for either tokenizer; it is dropped."""
    return any(ch.isalnum() for ch in term)


_OR = object()
"""The ``OR`` operator among the scanned tokens."""


def _tokens(text: str) -> list[object]:
    """Scan into ``(negated, term)`` pairs and ``_OR``.

    A term is a run of non-space characters, or the text between two double quotes (to
    the end when the closing quote is missing); a word ends where a quote begins. A
    ``-`` right before a term negates it; ``OR`` (any case, unquoted) is the operator.
    """
    tokens: list[object] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            term, quoted = text[i + 1 : end], True
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace() and text[end] != '"':
                end += 1
            term, quoted = text[i:end], False
            i = end
        if not quoted and not negated and term.lower() == "or":
            tokens.append(_OR)
        else:
            tokens.append((negated, term.strip()))
    return tokens


def is_blank(text: str | None) -> bool:
    """Whether ``text`` asks for no search at all (:func:`parse_query` returns None)."""
    return text is None or not _clean(text).strip()


def parse_query(text: str | None) -> SearchQuery | None:
    """The search ``text`` asks for; None when it is blank (no search).

    Raises :class:`QueryError` when the text is too long, holds no word to search for,
    or has an alternative made only of negated terms.
    """
    # Length first, blank or not: the API's schema says "at most MAX_QUERY_CHARS".
    if text is not None and len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the search is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})"
        )
    if is_blank(text):
        return None
    assert text is not None
    cleaned = _clean(text)
    groups: list[tuple[list[str], list[str]]] = [([], [])]
    for token in _tokens(cleaned):
        if token is _OR:
            # An OR with no term before it in this alternative (leading, doubled) is dropped.
            if groups[-1] != ([], []):
                groups.append(([], []))
            continue
        assert isinstance(token, tuple)
        negated, term = token
        if _searchable(term):
            groups[-1][1 if negated else 0].append(term)
    alternatives = []
    for include, exclude in groups:
        if include:
            alternatives.append(Alternative(tuple(include), tuple(exclude)))
        elif exclude:
            raise QueryError(
                "every part of a search needs a word that is not negated "
                "(-word only narrows a search; it cannot be a search of its own)"
            )
    if not alternatives:
        raise QueryError(f"no word to search for in {text!r}")
    return SearchQuery(tuple(alternatives))
