"""MinHash signatures of article bodies (pure): normalised words, 5-word shingles,
one-permutation hashing with optimal densification, and banded LSH keys.

Why here and not in :mod:`worker.dedup`: this is the numeric machinery (how a
body becomes 128 integers and 32 index keys, identically on every machine);
:mod:`worker.dedup` decides what two fingerprints mean. Every hash is derived
from CRC-32/BLAKE2b or fixed integer arithmetic, never Python's salted
``hash()``, so signatures stored by one process match those of another.
"""

from __future__ import annotations

import hashlib
import operator
import re
import struct
import sys
import unicodedata
import zlib
from array import array
from functools import cache

# Parameters (chosen from eval/dedup_eval.py; see docs/dedup.md).
SHINGLE_SIZE = 5
NUM_PERM = 128
BANDS = 32
ROWS = 4
assert BANDS * ROWS == NUM_PERM
# A signature with fewer filled bins than this came from fewer than ~40 words
# (expected filled bins for n shingles is 128 * (1 - (1 - 1/128) ** n)); its
# Jaccard estimate is too noisy to decide on.
MIN_FILLED_BINS = 32

SIGNATURE_VERSION = 1
EMPTY_BIN = 0xFFFFFFFF
"""The value of a bin no shingle fell into; every bin of an empty text's signature."""
_MASK64 = (1 << 64) - 1
_WORD_RE = re.compile(r"[^\W_]+")


# -- text ----------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """Canonical word sequence of ``text``: NFKC, casefolded, punctuation removed.

    Everything that differs between re-encoded copies of the same words --
    curly vs straight quotes, dashes, ``&nbsp;``-turned-NBSP, full-width
    forms, ligatures, case, line breaks -- disappears, and what remains is
    lower-case words separated by single spaces. Punctuation and symbols
    become word breaks (``don’t`` -> ``don t`` on every copy alike).
    """
    return " ".join(words_of(text))


def words_of(text: str) -> list[str]:
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
    return hash_words(words_of(text))


def hash_words(words: list[str]) -> str:
    if not words:
        return ""
    return hashlib.sha256(" ".join(words).encode("utf-8", "surrogatepass")).hexdigest()


def _mix64(x: int) -> int:
    """splitmix64 finaliser: spreads a 32-bit CRC over 64 well-mixed bits."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def word_hash(word: str) -> int:
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
    return signature_of_words(words_of(text), shingle_size)


def signature_of_words(words: list[str], shingle_size: int) -> tuple[int, ...]:
    if not words:
        return (EMPTY_BIN,) * NUM_PERM
    table = {w: word_hash(w) for w in set(words)}
    hashes = [table[w] for w in words]
    k = max(1, min(shingle_size, len(hashes)))
    mins = [EMPTY_BIN] * NUM_PERM
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
    empty = EMPTY_BIN
    signature = mins[:]
    for b in range(NUM_PERM):
        if mins[b] == empty:
            for donor in _donor_order(b):
                if mins[donor] != empty:
                    signature[b] = mins[donor]
                    break
    return tuple(signature)


def _is_empty(signature: tuple[int, ...]) -> bool:
    # tuple.count runs in C: this is called for every candidate of every lookup.
    return signature.count(EMPTY_BIN) == len(signature)


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
    # map(operator.eq) counts in C, about four times faster than a generator:
    # a stored article is compared with up to 50 candidates under the dedup lock.
    same: int = sum(map(operator.eq, a, b))
    return same / len(a)


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
    # The whole signature packed once (little-endian uint32s, as each band's rows were
    # packed one by one before; the keys are stored, so they must not change) and
    # sliced per band: half the CPU, and this runs under the dedup lock.
    packed = struct.pack(f"<{NUM_PERM}I", *signature)
    step = ROWS * 4
    blake2b = hashlib.blake2b
    return [
        f"{band:02d}:{blake2b(packed[band * step : (band + 1) * step], digest_size=8).hexdigest()}"
        for band in range(BANDS)
    ]


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


def check_signature(data: bytes) -> None:
    """``ValueError`` unless ``data`` is an encoded version-1 signature: its bins are then
    ``data[1:]``, little-endian uint32s."""
    if len(data) != 1 + 4 * NUM_PERM or data[0] != SIGNATURE_VERSION:
        raise ValueError("not a version-1 MinHash signature")


def decode_signature(data: bytes) -> tuple[int, ...]:
    """Inverse of :func:`encode_signature`; ``ValueError`` for a foreign or damaged value."""
    check_signature(data)
    values = array("I")
    values.frombytes(data[1:])
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return tuple(values)
