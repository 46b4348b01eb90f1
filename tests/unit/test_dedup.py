"""Fingerprints and match(): exact/near/short-body rules, storage round trips, stability."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.dedup import (
    BANDS,
    NUM_PERM,
    ROWS,
    Fingerprint,
    StoredFingerprint,
    best_match,
    content_hash,
    decode_signature,
    encode_signature,
    fingerprint,
    index_keys,
    is_short_signature,
    lsh_band_keys,
    match,
    minhash_signature,
    normalize_text,
    query_keys,
    signature_similarity,
    title_band_keys,
    title_similarity,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FUNDUS = DATA / "fundus" / "fundus_ground_truth.json"
T0 = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)

LOREM = (
    "Russian forces launched a large drone and missile attack on the Ukrainian capital overnight, "
    "officials said on Tuesday, damaging energy infrastructure and residential buildings in "
    "several districts. Air defence units shot down most of the incoming targets, according to "
    "the military administration, while emergency crews worked through the night to put out "
    "fires and search the rubble. The mayor urged residents to stay in shelters until the alert "
    "was lifted and said power would be restored gradually over the coming days. "
)


@pytest.fixture(scope="module")
def fundus_article() -> tuple[str, str]:
    if not FUNDUS.exists():
        pytest.skip("../shared/data not available")
    data = json.loads(FUNDUS.read_text("utf-8"))
    for item in data.values():
        body = item["articleBody"]
        if len(body.split()) > 400 and body.count("\n") >= 5 and item.get("title"):
            return item["title"], body
    pytest.skip("no suitable fundus article")


@pytest.fixture(scope="module")
def other_fundus_article(fundus_article: tuple[str, str]) -> tuple[str, str]:
    data = json.loads(FUNDUS.read_text("utf-8"))
    for item in data.values():
        body = item["articleBody"]
        if body != fundus_article[1] and len(body.split()) > 300 and item.get("title"):
            return item["title"], body
    pytest.skip("no second fundus article")


# -- normalisation and exact hashes --------------------------------------------
def test_normalize_text_folds_encoding_variants() -> None:
    a = 'He said: "It\'s over" \u2014 the end.\n\n  NEXT'
    b = "HE SAID \u201cIT\u2019S OVER\u201d \u2013 the\u00a0end\u2026 next"
    assert normalize_text(a) == normalize_text(b) == "he said it s over the end next"
    assert normalize_text("\ufb01le ＡＢＣ") == "file abc"  # ligature, full-width (NFKC)
    assert normalize_text("İSTANBUL ılık") == normalize_text("istanbul ILIK")


def test_content_hash_exact_copies_and_empty() -> None:
    assert content_hash("Hello,  world!") == content_hash("hello world")
    assert len(content_hash("hello")) == 64
    assert content_hash("") == content_hash(" ... \n") == ""
    assert content_hash("hello world") != content_hash("hello there world")


def test_empty_hashes_never_count_as_exact() -> None:
    a = fingerprint(title="A headline", body="", published_at=T0)
    b = fingerprint(title="Entirely different", body="  ", published_at=T0)
    result = match(a, b)
    assert not result.exact
    assert not result.same_story
    assert index_keys(a) == index_keys(a)  # title keys only, no body bands
    assert not lsh_band_keys(a.signature)


# -- signatures -----------------------------------------------------------------
def test_signature_shape_and_range() -> None:
    sig = minhash_signature(LOREM * 3)
    assert len(sig) == NUM_PERM
    assert all(0 <= v < 2**32 for v in sig)
    assert not is_short_signature(sig)
    assert is_short_signature(minhash_signature("Kyiv attacked overnight, officials say"))


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=400))
def test_signature_round_trip(text: str) -> None:
    sig = minhash_signature(text)
    data = encode_signature(sig)
    assert len(data) == 1 + 4 * NUM_PERM
    assert decode_signature(data) == sig


def test_decode_rejects_foreign_bytes() -> None:
    with pytest.raises(ValueError, match="signature"):
        decode_signature(b"\x00" * 10)
    with pytest.raises(ValueError, match="signature"):
        decode_signature(b"\x09" + b"\x00" * (4 * NUM_PERM))


def test_band_keys_format() -> None:
    keys = lsh_band_keys(minhash_signature(LOREM))
    assert len(keys) == BANDS == len(set(keys))
    assert all(len(k) <= 40 and k[2] == ":" for k in keys)
    assert keys[0].startswith("00:")


def _band_keys_as_first_written(signature: tuple[int, ...]) -> list[str]:
    """lsh_band_keys as it was when the first keys were stored (one band at a time)."""
    keys = []
    for band in range(BANDS):
        rows = signature[band * ROWS : (band + 1) * ROWS]
        packed = b"".join(v.to_bytes(4, "little") for v in rows)
        keys.append(f"{band:02d}:{hashlib.blake2b(packed, digest_size=8).hexdigest()}")
    return keys


@given(st.lists(st.integers(0, 2**32 - 1), min_size=NUM_PERM, max_size=NUM_PERM))
def test_band_keys_are_those_already_stored(values: list[int]) -> None:
    """Keys are stored in article_bands: a faster computation must give the same ones."""
    signature = tuple(values)
    if not lsh_band_keys(signature):  # the all-empty signature has no keys
        return
    assert lsh_band_keys(signature) == _band_keys_as_first_written(signature)
    text_signature = minhash_signature(LOREM)
    assert lsh_band_keys(text_signature) == _band_keys_as_first_written(text_signature)


def test_keys_stable_across_processes() -> None:
    """No reliance on Python's per-process salted hash(): a fresh interpreter with
    another PYTHONHASHSEED produces the same signature and keys."""
    code = (
        "from worker.dedup import *; from datetime import datetime, UTC;"
        f"fp = fingerprint(title='Kyiv attacked', body={LOREM!r}, "
        "published_at=datetime(2024,5,3,tzinfo=UTC));"
        "print(fp.signature[:8], index_keys(fp))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(root)},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    fp = fingerprint(
        title="Kyiv attacked", body=LOREM, published_at=datetime(2024, 5, 3, tzinfo=UTC)
    )
    assert outputs.pop().strip() == f"{fp.signature[:8]} {index_keys(fp)}"


def test_similarity_estimates_jaccard() -> None:
    a = minhash_signature(LOREM * 4)
    assert signature_similarity(a, a) == 1.0
    unrelated = minhash_signature(" ".join(f"word{i}" for i in range(800)))
    assert signature_similarity(a, unrelated) < 0.05
    assert signature_similarity(a, minhash_signature("")) == 0.0


# -- titles -----------------------------------------------------------------------
def test_title_similarity_edited_headlines() -> None:
    assert title_similarity("Russia strikes Kyiv", "Russia strikes Kyiv - Reuters") >= 0.8
    assert (
        title_similarity(
            "UPDATE 1-Russia strikes Kyiv energy grid", "Russia strikes Kyiv energy grid"
        )
        >= 0.8
    )
    assert title_similarity("Live updates: what we know", "Live updates: what we know so far") < 0.9
    assert title_similarity("Russia strikes Kyiv", "Germany wins football match") == 0.0
    assert title_similarity("", "anything") == 0.0


# -- match() on real variants ------------------------------------------------------
def test_match_real_syndicated_copy(fundus_article: tuple[str, str]) -> None:
    title, body = fundus_article
    paras = [p for p in body.split("\n") if p.strip()]
    original = fingerprint(title=title, body=body, published_at=T0)
    copy = fingerprint(
        title=f"{title} - Partner Wire",
        body="\n".join(["Advertisement", "Subscribe to our newsletter", *paras[:-2], "© 2024"]),
        published_at=T0 + timedelta(hours=5),
    )
    result = match(copy, original)
    assert result.same_story
    assert not result.exact
    assert result.body_similarity >= 0.5
    assert "near-duplicate" in result.reason
    # and storage will find it: query keys of the copy hit the original's index keys
    assert set(query_keys(copy)) & set(index_keys(original))


def test_match_reencoded_copy_is_exact(fundus_article: tuple[str, str]) -> None:
    title, body = fundus_article
    table = str.maketrans({'"': "\u201c", "'": "\u2019", " ": "\u00a0"})
    a = fingerprint(title=title, body=body, published_at=T0)
    b = fingerprint(
        title=title, body=body.translate(table).upper(), published_at=T0 + timedelta(days=30)
    )
    result = match(b, a)
    assert result.exact
    assert result.same_story


def test_match_different_articles(
    fundus_article: tuple[str, str], other_fundus_article: tuple[str, str]
) -> None:
    a = fingerprint(title=fundus_article[0], body=fundus_article[1], published_at=T0)
    b = fingerprint(title=other_fundus_article[0], body=other_fundus_article[1], published_at=T0)
    result = match(a, b)
    assert not result.same_story
    assert result.body_similarity < 0.1


def test_window_applies_to_near_duplicates(fundus_article: tuple[str, str]) -> None:
    title, body = fundus_article
    a = fingerprint(title=title, body=body, published_at=T0)
    b = fingerprint(
        title=title, body=body + "\nUpdated with new figures.", published_at=T0 + timedelta(days=10)
    )
    assert not match(a, b).same_story
    assert "outside window" in match(a, b).reason
    assert match(a, b, window=timedelta(days=14)).same_story
    undated = fingerprint(title=title, body=body + "\nUpdated.", published_at=None)
    assert match(a, undated).same_story


def test_match_is_symmetric(fundus_article: tuple[str, str]) -> None:
    title, body = fundus_article
    a = fingerprint(title=title, body=body, published_at=T0)
    b = fingerprint(title=title, body=" ".join(body.split()[:200]), published_at=T0)
    assert match(a, b) == match(b, a)


# -- short bodies --------------------------------------------------------------------
def test_short_body_uses_headline_and_window() -> None:
    full = fingerprint(
        title="Russian missiles hit Kyiv power plant overnight", body=LOREM * 3, published_at=T0
    )
    summary = fingerprint(
        title="Russian missiles hit Kyiv power plant",
        body="Russian forces launched a large drone and missile attack on the capital.",
        published_at=T0 + timedelta(hours=2),
    )
    result = match(summary, full)
    assert result.same_story
    assert "short body" in result.reason
    other = fingerprint(
        title="EU ministers agree new sanctions package",
        body="Foreign ministers met in Brussels on Monday.",
        published_at=T0,
    )
    assert not match(other, full).same_story
    late = fingerprint(title=summary.title, body="Short text.", published_at=T0 + timedelta(days=9))
    assert not match(late, full).same_story


def test_short_body_candidates_found_by_title_keys() -> None:
    a = fingerprint(
        title="Russian missiles hit Kyiv power plant overnight", body="Short.", published_at=T0
    )
    b = fingerprint(
        title="Russian missiles hit Kyiv power plant",
        body="Other words.",
        published_at=T0 + timedelta(days=1, hours=3),
    )
    assert set(query_keys(b)) & set(index_keys(a))
    far = fingerprint(title=b.title, body="x", published_at=T0 + timedelta(days=20))
    assert not set(query_keys(far)) & set(index_keys(a))
    assert all(len(k) <= 40 for k in query_keys(a))


def test_query_keys_date_the_title_keys_of_each_day_of_the_window() -> None:
    fp = fingerprint(title="Russian missiles hit Kyiv power plant", body=LOREM, published_at=T0)
    expected = set(lsh_band_keys(fp.signature))
    for offset in range(-3, 4):
        expected.update(title_band_keys(fp.title, T0 + timedelta(days=offset)))
    assert set(query_keys(fp, window=timedelta(days=3))) == expected
    assert len(expected) == BANDS + 7 * 6
    assert set(index_keys(fp)) == set(lsh_band_keys(fp.signature)) | set(
        title_band_keys(fp.title, T0)
    )


# A pool of texts whose pairs cover every rule of match(): copies and edits of one
# body, a shorter cut (short signature), feed-summary-length texts, an empty body,
# unrelated text, and headlines that agree fully, partly or not at all.
_WORDS = LOREM.split()
_BODIES = (
    LOREM * 3,
    LOREM * 3 + "Updated with the mayor's comments.",
    " ".join(_WORDS[::-1]) * 3,
    LOREM,
    " ".join(_WORDS[:30]),
    " ".join(_WORDS[:12]),
    "",
    "Foreign ministers met in Brussels on Monday to agree the next sanctions package. " * 6,
)
_TITLES = (
    "Russian missiles hit Kyiv power plant overnight",
    "Russian missiles hit Kyiv power plant",
    "Kyiv power plant hit by Russian missiles, mayor says",
    "EU ministers agree new sanctions package",
    "",
)
_POOL = [fingerprint(title=t, body=b, published_at=T0) for b in _BODIES for t in _TITLES]


def _stored(fp: Fingerprint, *, encoded: bool) -> StoredFingerprint:
    return StoredFingerprint(
        content_hash=fp.content_hash,
        minhash=encode_signature(fp.signature) if encoded else None,
        title=fp.title,
        published_at=fp.published_at,
    )


@settings(max_examples=300, deadline=None)
@given(
    new=st.integers(0, len(_POOL) - 1),
    new_hours=st.one_of(st.none(), st.integers(-24 * 6, 24 * 6)),
    candidates=st.lists(
        st.tuples(
            st.integers(0, len(_POOL) - 1),
            st.one_of(st.none(), st.integers(-24 * 6, 24 * 6)),
            st.booleans(),  # aware or naive date
            st.booleans(),  # signature stored or not
        ),
        max_size=12,
    ),
)
def test_best_match_is_the_best_of_match_on_each_candidate(
    new: int,
    new_hours: int | None,
    candidates: list[tuple[int, int | None, bool, bool]],
) -> None:
    """best_match compares the candidates as one array; its verdicts must be match()'s,
    and its choice the first candidate of the highest body similarity that is the
    same story."""
    base = _POOL[new]
    new_fp = Fingerprint(
        base.content_hash,
        base.signature,
        base.title,
        None if new_hours is None else T0 + timedelta(hours=new_hours),
    )
    stored: list[StoredFingerprint] = []
    decoded: list[Fingerprint] = []
    for index, hours, aware, encoded in candidates:
        fp = _POOL[index]
        when = None if hours is None else T0 + timedelta(hours=hours)
        if when is not None and not aware:
            when = when.replace(tzinfo=None)
        stored.append(
            _stored(Fingerprint(fp.content_hash, fp.signature, fp.title, when), encoded=encoded)
        )
        decoded.append(
            Fingerprint(fp.content_hash, fp.signature if encoded else (), fp.title, when)
        )
    verdicts = [match(new_fp, one) for one in decoded]
    expected = None
    for index, verdict in enumerate(verdicts):
        if verdict.same_story and (
            expected is None or verdict.body_similarity > expected[1].body_similarity
        ):
            expected = (index, verdict)
    assert best_match(new_fp, stored) == expected


def test_best_match_finds_the_copy_among_unrelated_candidates() -> None:
    new = fingerprint(title=_TITLES[0], body=_BODIES[1], published_at=T0)
    candidates = [
        _stored(fingerprint(title=_TITLES[3], body=_BODIES[7], published_at=T0), encoded=True),
        _stored(fingerprint(title=_TITLES[1], body=_BODIES[0], published_at=T0), encoded=True),
        _stored(fingerprint(title=_TITLES[0], body=_BODIES[2], published_at=T0), encoded=True),
    ]
    found = best_match(new, candidates)
    assert found is not None
    index, verdict = found
    assert index == 1
    assert verdict.same_story
    assert not verdict.exact
    assert verdict.body_similarity > 0.8
    assert "near-duplicate body" in verdict.reason
    assert best_match(new, candidates[:1]) is None
    assert best_match(new, []) is None


def test_best_match_rejects_a_damaged_signature() -> None:
    new = fingerprint(title=_TITLES[0], body=LOREM, published_at=T0)
    damaged = StoredFingerprint("x", b"\x07" + bytes(4 * NUM_PERM), _TITLES[0], T0)
    with pytest.raises(ValueError, match="version-1"):
        best_match(new, [damaged])


def test_fingerprint_speed() -> None:
    import time

    body = " ".join(f"w{i % 2000} x{i % 7}" for i in range(2500))  # 5,000 words
    fingerprint(title="t", body=body, published_at=None)
    start = time.perf_counter()
    for _ in range(5):
        fingerprint(title="t", body=body, published_at=None)
    per_call = (time.perf_counter() - start) / 5
    assert per_call < 0.05  # generous bound for loaded CI machines; ~5 ms typical
