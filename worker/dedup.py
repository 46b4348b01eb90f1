"""Duplicate and same-story detection: fingerprints and pairwise decisions (pure).

Three questions, three tools (rules, parameters and evaluation figures are in
``docs/dedup.md``):

* **Exact copy** -- :func:`content_hash`: SHA-256 of the body after
  :func:`normalize_text`, so a copy that differs only in case, quote style,
  Unicode form or whitespace has the same hash and one indexed equality
  lookup finds it.
* **Near copy** (syndication with other boilerplate, trimmed tail, small
  edits) -- a MinHash :func:`minhash_signature` over word shingles, whose
  agreement estimates the Jaccard similarity of the two shingle sets, plus
  banded LSH keys (:func:`lsh_band_keys`) so storage finds the few candidate
  articles through an index instead of comparing against everything.
* **Same story from a short text** (feed summaries) -- MinHash over a few
  dozen shingles is too noisy to trust, so :func:`match` falls back to
  headline similarity inside a time window, and :func:`title_band_keys`
  (bucketed by day) make those candidates findable too.

Storage calls :func:`index_keys` when it stores an article and
:func:`query_keys` to look candidates up, then :func:`best_match` over the
candidates' stored columns (:class:`StoredFingerprint`), which is :func:`match`
on each, computed on one numpy array; nothing here touches a database.

MinHash (:mod:`worker.minhash`) is implemented in pure Python as *one-permutation
hashing with optimal densification* (Li et al. 2012; Shrivastava 2017): one hash per
shingle instead of one per shingle and permutation, which is what makes a
5,000-word article cost a few milliseconds without numpy. Every hash is
derived from BLAKE2b or fixed integer arithmetic -- never Python's ``hash()``,
which is salted per process -- so signatures and keys are identical across
runs, machines and Python versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache

import numpy as np

from .minhash import (
    BANDS,
    EMPTY_BIN,
    MIN_FILLED_BINS,
    NUM_PERM,
    ROWS,
    SHINGLE_SIZE,
    check_signature,
    content_hash,
    decode_signature,
    encode_signature,
    hash_words,
    is_short_signature,
    lsh_band_keys,
    minhash_signature,
    normalize_text,
    signature_of_words,
    signature_similarity,
    word_hash,
    words_of,
)

__all__ = [
    "BANDS",
    "NUM_PERM",
    "ROWS",
    "SHINGLE_SIZE",
    "Fingerprint",
    "Match",
    "StoredFingerprint",
    "Thresholds",
    "best_match",
    "content_hash",
    "decide",
    "decode_signature",
    "encode_signature",
    "fingerprint",
    "index_keys",
    "is_short_signature",
    "lsh_band_keys",
    "match",
    "minhash_signature",
    "normalize_text",
    "query_keys",
    "signature_similarity",
    "title_band_keys",
    "title_similarity",
]

# -- parameters (chosen from eval/dedup_eval.py; see docs/dedup.md) -----------

# Body Jaccard (estimated) at or above which two long bodies are copies.
BODY_DUPLICATE = 0.35
# Lower body similarity that still counts when the headlines agree too.
BODY_RELATED = 0.2
TITLE_RELATED = 0.9
# Short bodies: headline similarity decides (within the window) ...
TITLE_SHORT = 0.6
# ... or any real shingle overlap with a loosely similar headline: unrelated
# short texts share no 5-word shingle at all (estimate exactly 0.0), so even
# a noisy estimate above this is evidence of shared wording.
SHORT_BODY = 0.05
SHORT_TITLE = 0.2

_MERSENNE = (1 << 61) - 1

# Headline words that carry no identity (English and German, our main
# languages); they would make "What we know about X" match "What we know about Y".
_TITLE_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "who",
        "why",
        "will",
        "with",
        "after",
        "over",
        "says",
        "said",
        "new",
        "live",
        "updates",
        "update",
        "latest",
        "news",
        "video",
        "watch",
        "photos",
        "how",
        "der",
        "die",
        "das",
        "und",
        "in",
        "im",
        "mit",
        "von",
        "zu",
        "den",
        "dem",
        "ein",
        "eine",
        "ist",
        "auf",
        "für",
        "nach",
    ]
)
TITLE_BANDS = 6
TITLE_ROWS = 1


# -- titles ----------------------------------------------------------------------
# Cached: a lookup compares the new headline with up to 50 candidates, and a
# wire story's headline comes back with every copy.
@lru_cache(maxsize=4096)
def _title_tokens(title: str) -> frozenset[str]:
    words = normalize_text(title).split()
    tokens = frozenset(w for w in words if w not in _TITLE_STOPWORDS and len(w) > 1)
    return tokens or frozenset(words)


def title_similarity(a: str, b: str) -> float:
    """Headline similarity in [0, 1]: Dice coefficient of content-word sets.

    Sets, not sequences, so reordered or partly rewritten headlines
    ("Russia strikes Kyiv" / "Kyiv hit by Russian strikes, mayor says") still
    score; stopwords and generic news words are ignored so they cannot carry
    a match on their own.
    """
    ta, tb = _title_tokens(a), _title_tokens(b)
    if not ta or not tb:
        return 0.0
    return 2 * len(ta & tb) / (len(ta) + len(tb))


@cache
def _title_hash_params(index: int) -> tuple[int, int]:
    digest = hashlib.blake2b(f"title:{index}".encode(), digest_size=16).digest()
    a = int.from_bytes(digest[:8], "little") % _MERSENNE or 1
    return a, int.from_bytes(digest[8:], "little") % _MERSENNE


def _day(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def title_band_keys(title: str, day: datetime) -> list[str]:
    """Keys ``"t{band}:{yyyymmdd}:{hex}"`` from a MinHash of the headline's content words.

    The day bucket keeps a key's posting list bounded by one day's volume:
    in a Ukraine-focused database "ukraine" is in most headlines, and an
    unbucketed key would grow with the whole history.
    """
    return _dated_title_keys(_title_band_digests(title), day)


def _dated_title_keys(digests: tuple[str, ...], day: datetime) -> list[str]:
    stamp = _day(day).strftime("%Y%m%d")
    return [f"t{band}:{stamp}:{digest}" for band, digest in enumerate(digests)]


@lru_cache(maxsize=4096)
def _title_band_digests(title: str) -> tuple[str, ...]:
    """The headline's band digests, which do not depend on the day: a lookup dates
    the same digests for each of the window's seven days, and a wire headline
    comes back with every copy."""
    tokens = _title_tokens(title)
    if not tokens:
        return ()
    hashed = [word_hash(t) for t in tokens]
    digests: list[str] = []
    for band in range(TITLE_BANDS):
        mins: list[int] = []
        for row in range(TITLE_ROWS):
            a, c = _title_hash_params(band * TITLE_ROWS + row)
            mins.append(min((a * h + c) % _MERSENNE for h in hashed))
        packed = b"".join(m.to_bytes(8, "little") for m in mins)
        digests.append(hashlib.blake2b(packed, digest_size=6).hexdigest())
    return tuple(digests)


# -- fingerprints and decisions -------------------------------------------------
@dataclass(frozen=True)
class Fingerprint:
    """Everything :func:`match` needs about one article; all of it is stored columns.

    ``published_at`` should be the publication time, or the fetch time when
    the feed gave none: title keys and the time window need some date.
    """

    content_hash: str
    signature: tuple[int, ...]
    title: str
    published_at: datetime | None


def fingerprint(*, title: str, body: str, published_at: datetime | None) -> Fingerprint:
    """Fingerprint of one article (a few ms for a 5,000-word body)."""
    words = words_of(body)  # tokenised once for both the hash and the signature
    return Fingerprint(
        content_hash=hash_words(words),
        signature=signature_of_words(words, SHINGLE_SIZE),
        title=title,
        published_at=published_at,
    )


def index_keys(fp: Fingerprint) -> list[str]:
    """Keys to store for ``fp`` in the band table (body bands + dated title bands)."""
    keys = list(_body_band_keys(fp.signature))
    if fp.published_at is not None:
        keys.extend(title_band_keys(fp.title, fp.published_at))
    return keys


@lru_cache(maxsize=64)
def _body_band_keys(signature: tuple[int, ...]) -> tuple[str, ...]:
    """:func:`lsh_band_keys`, once for a new article's lookup and its index entry."""
    return tuple(lsh_band_keys(signature))


def query_keys(fp: Fingerprint, *, window: timedelta = timedelta(days=3)) -> list[str]:
    """Keys to look up for a new ``fp``: its body bands, and its title bands for every
    day within ``window`` of its date (an edited headline may be a day older)."""
    keys = list(_body_band_keys(fp.signature))
    if fp.published_at is not None:
        days = max(0, window.days + (1 if window.seconds or window.microseconds else 0))
        start = _day(fp.published_at)
        digests = _title_band_digests(fp.title)
        for offset in range(-days, days + 1):
            keys.extend(_dated_title_keys(digests, start + timedelta(days=offset)))
    return keys


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of :func:`match`; defaults come from eval/dedup_eval.py."""

    body_duplicate: float = BODY_DUPLICATE
    body_related: float = BODY_RELATED
    title_related: float = TITLE_RELATED
    title_short: float = TITLE_SHORT
    short_body: float = SHORT_BODY
    short_title: float = SHORT_TITLE


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Match:
    """The verdict on one pair, with the numbers behind it for operators."""

    same_story: bool
    exact: bool
    body_similarity: float
    title_similarity: float
    reason: str


def _within(a: datetime | None, b: datetime | None, window: timedelta) -> tuple[bool, str]:
    if a is None or b is None:
        return True, "date unknown"
    if (a.tzinfo is None) != (b.tzinfo is None):  # compare naive as UTC
        a = a.replace(tzinfo=UTC) if a.tzinfo is None else a
        b = b.replace(tzinfo=UTC) if b.tzinfo is None else b
    delta = abs(a - b)
    return delta <= window, f"{delta.total_seconds() / 3600:.0f}h apart"


def decide(
    *,
    exact: bool,
    in_window: bool,
    short: bool,
    body: float,
    title: float,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> tuple[bool, str]:
    """The rule table of :func:`match` on precomputed features: (same_story, rule name).

    Separate so the evaluation can sweep thresholds without recomputing
    similarities, and is guaranteed to test the very rules production runs.
    """
    if exact:
        return True, "exact"
    if not in_window:
        return False, "outside_window"
    if not short:
        if body >= thresholds.body_duplicate:
            return True, "near_duplicate_body"
        if body >= thresholds.body_related and title >= thresholds.title_related:
            return True, "similar_body_and_title"
        return False, "different_body"
    if title >= thresholds.title_short:
        return True, "short_body_title_match"
    if body >= thresholds.short_body and title >= thresholds.short_title:
        return True, "short_body_shared_wording"
    return False, "short_body_title_differs"


def match(
    new: Fingerprint,
    existing: Fingerprint,
    *,
    window: timedelta = timedelta(days=3),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Match:
    """Decide whether ``new`` is a copy / the same story as ``existing`` (symmetric).

    Rules, in order (thresholds from the evaluation, see docs/dedup.md):

    1. identical non-empty content hash -> same (exact copy), at any distance in time;
    2. published further apart than ``window`` -> different (recurring
       templated reports look alike but are new stories); unknown dates pass;
    3. both bodies long enough: body similarity >= ``body_duplicate``, or
       >= ``body_related`` with headline similarity >= ``title_related``;
    4. either body short (feed summary): headline similarity >= ``title_short``,
       or shared wording (body >= ``short_body``) with headline >= ``short_title``.
    """
    exact = bool(new.content_hash) and new.content_hash == existing.content_hash
    body = signature_similarity(new.signature, existing.signature)
    short = is_short_signature(new.signature) or is_short_signature(existing.signature)
    return _Decision.of(new, existing, exact, body, short, window, thresholds).as_match()


@dataclass(frozen=True)
class _Decision:
    """:func:`decide`'s verdict on one pair with its inputs, before the operator-facing
    reason is formatted (:meth:`as_match`): :func:`best_match` formats it only for
    the candidate it returns."""

    same: bool
    rule: str
    exact: bool
    body: float
    title: float
    when: str

    @classmethod
    def of(
        cls,
        new: Fingerprint,
        existing: Fingerprint | StoredFingerprint,
        exact: bool,
        body: float,
        short: bool,
        window: timedelta,
        thresholds: Thresholds,
    ) -> _Decision:
        title = title_similarity(new.title, existing.title)
        in_window, when = _within(new.published_at, existing.published_at, window)
        same, rule = decide(
            exact=exact,
            in_window=in_window,
            short=short,
            body=body,
            title=title,
            thresholds=thresholds,
        )
        return cls(same, rule, exact, body, title, when)

    def as_match(self) -> Match:
        reason = _REASONS[self.rule].format(body=self.body, title=self.title, when=self.when)
        return Match(self.same, self.exact, round(self.body, 4), round(self.title, 4), reason)


@dataclass(frozen=True)
class StoredFingerprint:
    """A stored article's fingerprint as its columns hold it: the signature still
    encoded (:func:`encode_signature`, or ``None`` for none), so that a lookup's
    candidates are compared without decoding each one (:func:`best_match`)."""

    content_hash: str | None
    minhash: bytes | None
    title: str
    published_at: datetime | None


def best_match(
    new: Fingerprint,
    candidates: Sequence[StoredFingerprint],
    *,
    window: timedelta = timedelta(days=3),
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> tuple[int, Match] | None:
    """The candidate ``new`` is the same story as with the highest body similarity
    (the first of equals), by its index, and the verdict; ``None`` if there is none.

    The verdict of each candidate is :func:`match`'s (``tests/unit/test_dedup.py``
    checks the two agree on random pairs). Why a function of its own: a lookup meets
    about 35 candidates, under the dedup lock, and comparing them one by one cost
    more client CPU than its statements (decoding 128 integers, two distinct-value
    counts and a formatted reason for each); here the signatures are compared
    together as one array and only the winner's reason is formatted.
    """
    if not candidates:
        return None
    body, short = _body_features(new.signature, [c.minhash for c in candidates])
    best: _Decision | None = None
    best_index = -1
    for index, candidate in enumerate(candidates):
        exact = bool(new.content_hash) and new.content_hash == candidate.content_hash
        decision = _Decision.of(
            new, candidate, exact, body[index], short[index], window, thresholds
        )
        if decision.same and (best is None or decision.body > best.body):
            best, best_index = decision, index
    return None if best is None else (best_index, best.as_match())


def _body_features(
    signature: tuple[int, ...], stored: Sequence[bytes | None]
) -> tuple[list[float], list[bool]]:
    """Per stored signature: :func:`signature_similarity` with ``signature`` and whether
    either is short (:func:`is_short_signature`), computed on one array."""
    rows = [_signature_bytes(blob) for blob in stored]
    new_short = is_short_signature(signature)
    body = [0.0] * len(rows)
    short = [True] * len(rows)
    present = [i for i, row in enumerate(rows) if row is not None]
    if not present:
        return body, short
    matrix = np.frombuffer(b"".join(rows[i] or b"" for i in present), dtype="<u4").reshape(
        len(present), NUM_PERM
    )
    ordered = np.sort(matrix, axis=1)
    distinct = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
    empty = ordered[:, 0] == EMPTY_BIN  # sorted: the smallest bin empty means all are
    comparable = len(signature) == NUM_PERM and signature.count(EMPTY_BIN) != NUM_PERM
    same = (
        np.count_nonzero(matrix == np.asarray(signature, dtype=np.uint32), axis=1)
        if comparable
        else None
    )
    for row, i in enumerate(present):
        short[i] = new_short or int(distinct[row]) < MIN_FILLED_BINS
        if same is not None and not empty[row]:
            body[i] = int(same[row]) / NUM_PERM
    return body, short


def _signature_bytes(blob: bytes | None) -> bytes | None:
    """The uint32 bins of an encoded signature; ``ValueError`` as
    :func:`decode_signature` for a foreign or damaged value."""
    if not blob:
        return None
    check_signature(blob)
    return blob[1:]


# The operator-facing reason of each rule of :func:`decide`, formatted only for the
# rule that applies: ``match`` runs for every candidate of every lookup, under the
# dedup lock.
_REASONS = {
    "exact": "exact: identical normalised body",
    "outside_window": "outside window ({when})",
    "near_duplicate_body": "near-duplicate body (J~{body:.2f}, {when})",
    "similar_body_and_title": "similar body (J~{body:.2f}) and headline ({title:.2f})",
    "different_body": "different body (J~{body:.2f}, headline {title:.2f})",
    "short_body_title_match": "short body; headlines match ({title:.2f}, {when})",
    "short_body_shared_wording": (
        "short body; shared wording (J~{body:.2f}) and headline ({title:.2f})"
    ),
    "short_body_title_differs": "short body; headlines differ ({title:.2f})",
}
