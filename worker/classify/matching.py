"""Finding a term table's terms in text, and knowing which term each match is.

The rule layer needs, for every match, *which* term matched (its weight, and its name for
the evidence and the learned stages' ``lx:`` features) and *where* (title or body, lead or
not, which sentence). One regular expression per table, with a capturing group per term,
answers both in a single pass over the text; a table with few terms is matched instead only
where one of its terms' literal beginnings occurs (``str.find``), which finds the same hits
without scanning a long body once more (see :class:`Matcher`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

MAX_ANCHORS = 32
"""A table is matched by its anchors only when it has at most this many: each is one
``str.find`` pass over the text, so beyond ~30 they cost more than one regex scan
(``python -m bench.rule_tables``, 2026-12-03: 30 anchors 0.40 vs 0.58 ms on a
20,000-character body, 65 anchors 0.98 vs 0.72 ms; on feed items about even at 30, faster
below)."""


class Hit(NamedTuple):
    """One match: its offset, the index of its term in the table, and the text matched.

    A named tuple rather than a dataclass because a long body has hundreds of hits and a
    tuple is built several times faster.
    """

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


def _group_end(pattern: str) -> int | None:
    """The index of the ``)`` closing the group that opens ``pattern`` (``None``: unbalanced)."""
    depth = 0
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
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
            if depth == 0:
                return i
        i += 1
    return None


def _literal_prefix(branch: str) -> str:
    """The characters every match of ``branch`` starts with ("" when it starts otherwise).

    Stops at the first metacharacter and drops a character that a quantifier makes
    optional (``slo?v[iy]ansk`` -> ``sl``); anything unusual yields a shorter prefix or "",
    never a wrong one.
    """
    prefix: list[str] = []
    for i, ch in enumerate(branch):
        following = branch[i + 1 : i + 2]
        if ch in "\\[](){}.^$|?*+" or following in ("?", "*", "{"):
            break
        prefix.append(ch)
        if following == "+":
            break
    return "".join(prefix)


def _anchors(branches: list[str]) -> list[str] | None:
    """Literal strings at least one of which begins every match of any of ``branches``;
    ``None`` when some branch has no literal beginning (``\\$?\\d...``, ``[ck]...``).

    A branch opening with a group of alternatives (``(?:european|british) troops``) gives
    one anchor per alternative; one opening with an optional group gives none.
    """
    found: set[str] = set()
    for branch in branches:
        expanded = [branch]
        if branch.startswith("(?:"):
            close = _group_end(branch)
            rest = branch[close + 1 :] if close is not None else "?"
            if rest[:1] in ("?", "*", "+", "{"):
                return None
            expanded = [alt + rest for alt in _split_top_level(branch[3:close])]
        for alternative in expanded:
            prefix = _literal_prefix(alternative)
            if not prefix:
                return None
            found.add(prefix)
    # "nato" already finds every place "nato membership" could start.
    ordered = sorted(found, key=lambda a: (len(a), a))
    kept: list[str] = []
    for anchor in ordered:
        if not any(anchor.startswith(shorter) for shorter in kept):
            kept.append(anchor)
    return kept


class Matcher:
    """One precompiled alternation per category, with word boundaries that work for Cyrillic.

    Every branch ends in an empty capturing group and ``match.lastindex`` maps back to the
    term, so nothing is re-run to find out what matched. Branches are factored by their
    first letter (``k(?:yiv\\w*()|iev\\w*())``): at each word start the regex engine then
    tries only the few terms sharing that letter instead of all of them. The group sits at
    the end, not around the branch, so each branch starts with its literal and the engine
    skips a branch whose first character differs without entering it (a group first made the
    rule layer 1.7 times slower on a long body: docs/classifier.md, "Speed of the rule
    layer"). Spaces match whitespace or hyphens.

    A table with few terms (``MAX_ANCHORS``) is not scanned at all: every match
    starts with one of the terms' literal beginnings (*anchors*), so the regex is tried only
    where ``str.find`` finds an anchor, in order, skipping positions inside the previous
    hit - exactly the hits ``finditer`` returns, without one more pass of the regex engine
    over every character (the rule layer runs twelve tables over each body).
    """

    def __init__(
        self, terms: Iterable[tuple[str, float]], *, max_anchors: int = MAX_ANCHORS
    ) -> None:
        self.weights: list[float] = []
        by_letter: dict[str, list[tuple[str, int]]] = {}
        misc: list[tuple[str, int]] = []
        all_branches: list[str] = []
        for term_id, (pattern, weight) in enumerate(terms):
            self.weights.append(weight)
            for branch in _split_top_level(pattern.replace(" ", r"[\s\-]+")):
                all_branches.append(branch)
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
        anchors = _anchors(all_branches)
        self.anchors: tuple[str, ...] | None = (
            tuple(anchors) if anchors is not None and len(anchors) <= max_anchors else None
        )
        """The table's anchors, or ``None`` when it is always scanned."""

    def find(self, text: str) -> list[Hit]:
        """Every hit in ``text``, as ``regex.finditer`` finds them (non-overlapping, in order)."""
        if self.anchors is not None:
            return self.find_anchored(text)
        return self.scan(text)

    def scan(self, text: str) -> list[Hit]:
        """The hits by one regex pass over the whole text."""
        group_term = self._group_term
        return [
            Hit(m.start(), group_term[(m.lastindex or 1) - 1], m[0])
            for m in self.regex.finditer(text)
        ]

    def find_anchored(self, text: str) -> list[Hit]:
        """The hits by trying the regex only where an anchor occurs (needs ``anchors``).

        ``finditer`` returns the match at the first position where the regex matches, then
        resumes at its end; a match can only start where an anchor does, so trying those
        positions in order and skipping any inside the last hit gives the same hits.
        """
        assert self.anchors is not None
        starts: set[int] = set()
        for anchor in self.anchors:
            at = text.find(anchor)
            while at >= 0:
                starts.add(at)
                at = text.find(anchor, at + 1)
        hits: list[Hit] = []
        match = self.regex.match
        group_term = self._group_term
        end = 0
        for start in sorted(starts):
            if start < end:
                continue
            m = match(text, start)
            if m is not None:
                hits.append(Hit(start, group_term[(m.lastindex or 1) - 1], m[0]))
                end = m.end()
        return hits
