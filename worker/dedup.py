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
:func:`query_keys` to look candidates up, then :func:`match` on each
candidate's :class:`Fingerprint`; nothing here touches a database.

MinHash is implemented here in pure Python as *one-permutation hashing with
optimal densification* (Li et al. 2012; Shrivastava 2017): one hash per
shingle instead of one per shingle and permutation, which is what makes a
5,000-word article cost a few milliseconds without numpy. Every hash is
derived from BLAKE2b or fixed integer arithmetic -- never Python's ``hash()``,
which is salted per process -- so signatures and keys are identical across
runs, machines and Python versions.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
import zlib
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

__all__ = [
    "BANDS",
    "NUM_PERM",
    "ROWS",
    "SHINGLE_SIZE",
    "Fingerprint",
    "Match",
    "Thresholds",
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
SHINGLE_SIZE = 5
NUM_PERM = 128
BANDS = 32
ROWS = 4
assert BANDS * ROWS == NUM_PERM

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
# A signature with fewer filled bins than this came from fewer than ~40 words
# (expected filled bins for n shingles is 128 * (1 - (1 - 1/128) ** n)); its
# Jaccard estimate is too noisy to decide on.
MIN_FILLED_BINS = 32

SIGNATURE_VERSION = 1
_EMPTY = 0xFFFFFFFF  # bin value of an empty signature (no words at all)
_MERSENNE = (1 << 61) - 1
_MASK64 = (1 << 64) - 1
_WORD_RE = re.compile(r"[^\W_]+")

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


# -- text ----------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """Canonical word sequence of ``text``: NFKC, casefolded, punctuation removed.

    Everything that differs between re-encoded copies of the same words --
    curly vs straight quotes, dashes, ``&nbsp;``-turned-NBSP, full-width
    forms, ligatures, case, line breaks -- disappears, and what remains is
    lower-case words separated by single spaces. Punctuation and symbols
    become word breaks (``don’t`` -> ``don t`` on every copy alike).
    """
    return " ".join(_words(text))


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    if "\u0131" in folded or "\u0307" in folded:
        # Turkish dotted/dotless i: "I" casefolds to "i" but "ı" stays, and "İ"
        # becomes "i" + combining dot; fold both so upper-cased copies still match.
        folded = folded.replace("\u0131", "i").replace("\u0307", "")
    return _WORD_RE.findall(folded)


def content_hash(text: str) -> str:
    """SHA-256 hex of :func:`normalize_text` (``text``), or ``""`` when no words remain.

    ``""`` means "nothing to compare" and never counts as an exact match
    (:func:`match` checks); storage must not look up or index the empty hash,
    otherwise every empty body would be a duplicate of every other. Returning
    a value instead of raising keeps a bodiless feed item storable.
    """
    return _hash_words(_words(text))


def _hash_words(words: list[str]) -> str:
    if not words:
        return ""
    return hashlib.sha256(" ".join(words).encode("utf-8", "surrogatepass")).hexdigest()


def _mix64(x: int) -> int:
    """splitmix64 finaliser: spreads a 32-bit CRC over 64 well-mixed bits."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _word_hash(word: str) -> int:
    """64-bit hash of one word: CRC-32 (C speed) mixed by splitmix64.

    Two different words share a CRC with probability 2**-32, and a false
    shingle match needs all five words of a shingle to collide, so the
    cheaper hash costs no accuracy while being ~40% faster than BLAKE2b.
    """
    return _mix64(zlib.crc32(word.encode("utf-8", "surrogatepass")))


@cache
def _coefficients(k: int) -> tuple[int, ...]:
    """Odd 64-bit multipliers, one per word position of a shingle."""
    return tuple(pow(0x9E3779B97F4A7C15, j + 1, 1 << 64) | 1 for j in range(k))


@cache
def _donor_order(bin_index: int) -> tuple[int, ...]:
    """A fixed pseudo-random order of all bins, used to fill empty bin ``bin_index``.

    Fisher-Yates driven by BLAKE2b, so the order is the same everywhere.
    """
    order = list(range(NUM_PERM))
    for i in range(NUM_PERM - 1, 0, -1):
        seed = f"donor:{bin_index}:{i}".encode()
        j = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "little") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return tuple(b for b in order if b != bin_index)


def minhash_signature(text: str, *, shingle_size: int = SHINGLE_SIZE) -> tuple[int, ...]:
    """128 MinHash values (31-bit, stored as uint32) of the 5-word shingles of ``text``.

    One-permutation hashing: each shingle's 61-bit hash picks a bin (low 7
    bits) and competes for that bin's minimum with its high 31 bits. Empty
    bins borrow the value of the first non-empty bin in a fixed per-bin
    order (optimal densification), which keeps the collision probability of
    every position equal to the Jaccard similarity. Text with fewer words
    than a shingle is one shingle; text with no words gives an all-empty
    signature that matches nothing.
    """
    return _signature_of_words(_words(text), shingle_size)


def _signature_of_words(words: list[str], shingle_size: int) -> tuple[int, ...]:
    if not words:
        return (_EMPTY,) * NUM_PERM
    table = {w: _word_hash(w) for w in set(words)}
    hashes = [table[w] for w in words]
    k = max(1, min(shingle_size, len(hashes)))
    mins = [_EMPTY] * NUM_PERM
    mask = _MASK64
    # Polynomial hash of each k-word window, sum(h[i+j] * c[j]) mod 2**64 with
    # odd coefficients; bin = top 7 bits, value = the next 31 bits.
    coeffs = _coefficients(k)
    if k == 5:  # unrolled fast path for the production setting
        c0, c1, c2, c3, c4 = coeffs
        shingles = [
            (a * c0 + b * c1 + c * c2 + d * c3 + e * c4) & mask
            for a, b, c, d, e in zip(
                hashes, hashes[1:], hashes[2:], hashes[3:], hashes[4:], strict=False
            )
        ]
    else:
        windows = zip(*(hashes[j:] for j in range(k)), strict=False)
        shingles = [sum(h * c for h, c in zip(w, coeffs, strict=True)) & mask for w in windows]
    for h in shingles:
        b = h >> 57
        v = (h >> 26) & 0x7FFFFFFF
        if v < mins[b]:
            mins[b] = v
    empty = _EMPTY
    signature = mins[:]
    for b in range(NUM_PERM):
        if mins[b] == empty:
            for donor in _donor_order(b):
                if mins[donor] != empty:
                    signature[b] = mins[donor]
                    break
    return tuple(signature)


def _is_empty(signature: tuple[int, ...]) -> bool:
    return all(v == _EMPTY for v in signature)


def is_short_signature(signature: tuple[int, ...]) -> bool:
    """True when the signature came from too little text to estimate Jaccard.

    Read from the signature itself (distinct values = filled bins), so the
    decision needs nothing beyond what storage already keeps.
    """
    return len(set(signature)) < MIN_FILLED_BINS


def signature_similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of the two shingle sets (0.0 if either is empty)."""
    if len(a) != len(b) or not a or _is_empty(a) or _is_empty(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def lsh_band_keys(signature: tuple[int, ...]) -> list[str]:
    """``BANDS`` index keys ``"{band:02d}:{16 hex}"``; two bodies share one w.p. 1-(1-J^4)^32.

    With 32 bands of 4 rows a pair at Jaccard 0.45 becomes a candidate with
    probability ~0.73, at 0.6 ~0.98, at 0.2 ~0.05. Real copies sit far above
    the 0.35 decision threshold (99.3% of matching synthetic copies share a
    key, no random pair does), and 4-row bands keep shared boilerplate from
    turning into hot keys. Empty signatures have no keys.
    """
    if len(signature) != NUM_PERM or _is_empty(signature):
        return []
    keys: list[str] = []
    for band in range(BANDS):
        rows = signature[band * ROWS : (band + 1) * ROWS]
        packed = b"".join(v.to_bytes(4, "little") for v in rows)
        keys.append(f"{band:02d}:{hashlib.blake2b(packed, digest_size=8).hexdigest()}")
    return keys


def encode_signature(signature: tuple[int, ...]) -> bytes:
    """Compact column value: one version byte + little-endian uint32s (513 bytes).

    The version byte lets a later change of shingle size or hash scheme
    recognise (and recompute) old signatures instead of comparing apples to
    oranges.
    """
    values = array("I", signature)
    if values.itemsize != 4:  # pragma: no cover - exotic platforms only
        values = array("L", signature)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return bytes([SIGNATURE_VERSION]) + values.tobytes()


def decode_signature(data: bytes) -> tuple[int, ...]:
    """Inverse of :func:`encode_signature`; ``ValueError`` for a foreign or damaged value."""
    if len(data) != 1 + 4 * NUM_PERM or data[0] != SIGNATURE_VERSION:
        raise ValueError("not a version-1 MinHash signature")
    values = array("I")
    values.frombytes(data[1:])
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return tuple(values)


# -- titles ----------------------------------------------------------------------
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
    tokens = _title_tokens(title)
    if not tokens:
        return []
    hashed = [_word_hash(t) for t in tokens]
    stamp = _day(day).strftime("%Y%m%d")
    keys: list[str] = []
    for band in range(TITLE_BANDS):
        mins: list[int] = []
        for row in range(TITLE_ROWS):
            a, c = _title_hash_params(band * TITLE_ROWS + row)
            mins.append(min((a * h + c) % _MERSENNE for h in hashed))
        packed = b"".join(m.to_bytes(8, "little") for m in mins)
        keys.append(f"t{band}:{stamp}:{hashlib.blake2b(packed, digest_size=6).hexdigest()}")
    return keys


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
    words = _words(body)  # tokenised once for both the hash and the signature
    return Fingerprint(
        content_hash=_hash_words(words),
        signature=_signature_of_words(words, SHINGLE_SIZE),
        title=title,
        published_at=published_at,
    )


def index_keys(fp: Fingerprint) -> list[str]:
    """Keys to store for ``fp`` in the band table (body bands + dated title bands)."""
    keys = lsh_band_keys(fp.signature)
    if fp.published_at is not None:
        keys.extend(title_band_keys(fp.title, fp.published_at))
    return keys


def query_keys(fp: Fingerprint, *, window: timedelta = timedelta(days=3)) -> list[str]:
    """Keys to look up for a new ``fp``: its body bands, and its title bands for every
    day within ``window`` of its date (an edited headline may be a day older)."""
    keys = lsh_band_keys(fp.signature)
    if fp.published_at is not None:
        days = max(0, window.days + (1 if window.seconds or window.microseconds else 0))
        start = _day(fp.published_at)
        for offset in range(-days, days + 1):
            keys.extend(title_band_keys(fp.title, start + timedelta(days=offset)))
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
    title = title_similarity(new.title, existing.title)
    in_window, when = _within(new.published_at, existing.published_at, window)
    short = is_short_signature(new.signature) or is_short_signature(existing.signature)
    same, rule = decide(
        exact=exact,
        in_window=in_window,
        short=short,
        body=body,
        title=title,
        thresholds=thresholds,
    )
    reason = {
        "exact": "exact: identical normalised body",
        "outside_window": f"outside window ({when})",
        "near_duplicate_body": f"near-duplicate body (J~{body:.2f}, {when})",
        "similar_body_and_title": f"similar body (J~{body:.2f}) and headline ({title:.2f})",
        "different_body": f"different body (J~{body:.2f}, headline {title:.2f})",
        "short_body_title_match": f"short body; headlines match ({title:.2f}, {when})",
        "short_body_shared_wording": (
            f"short body; shared wording (J~{body:.2f}) and headline ({title:.2f})"
        ),
        "short_body_title_differs": f"short body; headlines differ ({title:.2f})",
    }[rule]
    return Match(same, exact, round(body, 4), round(title, 4), reason)
