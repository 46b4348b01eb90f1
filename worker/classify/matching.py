"""Finding a term table's terms in text, and knowing which term each match is.

The rule layer needs, for every match, *which* term matched (its weight, and its name for
the evidence and the learned stages' ``lx:`` features) and *where* (title or body, lead or
not, which sentence). One regular expression per table, with a capturing group per term,
answers both in a single pass over the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    """One match: its offset, the index of its term in the table, and the text matched."""

    start: int
    term: int
    text: str


def _split_top_level(pattern: str) -> list[str]:
    """Split a pattern on ``|`` that are not inside brackets or parentheses."""
    branches: list[str] = []
    depth = 0
    in_class = False
    current: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            current.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            branches.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    branches.append("".join(current))
    return branches


class Matcher:
    """One precompiled alternation per category, with word boundaries that work for Cyrillic.

    Every branch sits in its own capturing group and ``match.lastindex`` maps back to the
    term, so nothing is re-run to find out what matched. Branches are factored by their
    first letter (``k(?:(yiv\\w*)|(iev\\w*))``): at each word start the regex engine then
    tries only the few terms sharing that letter instead of all of them, which keeps a
    20,000-character body well inside the latency budget. Spaces match whitespace or hyphens.
    """

    def __init__(self, terms: Iterable[tuple[str, float]]) -> None:
        self.weights: list[float] = []
        by_letter: dict[str, list[tuple[str, int]]] = {}
        misc: list[tuple[str, int]] = []
        for term_id, (pattern, weight) in enumerate(terms):
            self.weights.append(weight)
            for branch in _split_top_level(pattern.replace(" ", r"[\s\-]+")):
                head = branch[:1]
                if head.isalpha() and branch[1:2] not in ("?", "*", "+", "{"):
                    by_letter.setdefault(head, []).append((branch[1:], term_id))
                else:
                    misc.append((branch, term_id))
        parts: list[str] = []
        self._group_term: list[int] = []
        for head, branches in by_letter.items():
            inner = []
            # Longest first, so "war in ukraine" wins over "war" at the same position.
            for rest, term_id in sorted(branches, key=lambda br: -len(br[0])):
                inner.append(rest + "()")
                self._group_term.append(term_id)
            parts.append(re.escape(head) + "(?:" + "|".join(inner) + ")")
        for branch, term_id in sorted(misc, key=lambda br: -len(br[0])):
            parts.append("(?:" + branch + ")()")
            self._group_term.append(term_id)
        self.regex = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.UNICODE)

    def find(self, text: str) -> list[Hit]:
        hits: list[Hit] = []
        for m in self.regex.finditer(text):
            term = self._group_term[(m.lastindex or 1) - 1]
            hits.append(Hit(m.start(), term, m.group(0)))
        return hits
