"""The feedparser project's own 2,106 sample feeds through our parsing stage.

Each sample's header comment holds ``Description:``, an ``Expect:`` Python
expression over feedparser's result and optionally ``Header:`` lines (HTTP
headers, for the ``http_*`` samples). We evaluate ``Expect`` against a view of
*our* :class:`worker.feeds.ParsedFeed` where the expression only uses what we
keep (bozo, encoding, feed/entry titles); expressions about fields we drop are
counted as not applicable.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from worker.errors import PermanentError
from worker.feeds import ParsedFeed, parse_feed

pytestmark = pytest.mark.integration

_DESC = re.compile(r"Description:\s*(.*?)\s*Expect:\s*(.*?)\s*-->", re.S)
_HEADER = re.compile(r"^Header:\s+([^:]+):(.*)$", re.M)
_SKIP = re.compile(r"SkipUnless:\s*(.*?)\n")


@dataclass(frozen=True)
class Sample:
    path: Path
    body: bytes
    expect: str
    headers: dict[str, str]
    guarded: bool = False


def _text(data: bytes) -> str:
    """The sample's text, decoded from its byte-order pattern as feedparser's harness does."""
    for prefix, codec in (
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\x00\x3c", "utf-32-be"),
        (b"\x3c\x00\x00\x00", "utf-32-le"),
        (b"\x00\x3c\x00\x3f", "utf-16-be"),
        (b"\x3c\x00\x3f\x00", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
        (b"\xff\xfe", "utf-16-le"),
    ):
        if data.startswith(prefix):
            return data.decode(codec, "ignore")
    return data.decode("utf-8", "ignore")


def _load(path: Path) -> Sample | None:
    data = path.read_bytes()
    text = _text(data)
    found = _DESC.search(text)
    if found is None:
        return None
    # ``SkipUnless`` guards an Expect that needs an optional library (chardet);
    # the sample still runs for robustness, its Expect is just not evaluated.
    guarded = False
    skip = _SKIP.search(text)
    if skip:
        try:
            guarded = not eval(skip.group(1).strip(), {})
        except Exception:
            guarded = True
    headers: dict[str, str] = {}
    if "http" in path.name:
        headers = {k.strip().lower(): v.strip() for k, v in _HEADER.findall(text)}
        headers.setdefault("content-type", "text/xml")
    return Sample(
        path=path, body=data, expect=found.group(2).strip(), headers=headers, guarded=guarded
    )


class _Dict(dict[str, Any]):
    """feedparser's results allow attribute access; some Expect lines use it."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def _env(parsed: ParsedFeed) -> dict[str, Any]:
    entries = [_Dict(title=i.title, link=i.url, id=i.guid, summary=i.summary) for i in parsed.items]
    feed = _Dict(title=parsed.title, link=parsed.site_url, language=parsed.language)
    return {
        "bozo": parsed.bozo,
        "encoding": parsed.encoding,
        "feed": feed,
        "entries": entries,
        "items": entries,
        "channel": feed,
    }


def _evaluate(expect: str, parsed: ParsedFeed) -> bool | None:
    """True/False when the expression only uses what we keep, None when it doesn't."""
    try:
        return bool(eval(expect, {"__builtins__": __builtins__}, _env(parsed)))
    except Exception:
        return None


def _samples(root: Path, folder: str) -> list[Sample]:
    found = [_load(p) for p in sorted((root / folder).rglob("*.xml"))]
    return [s for s in found if s is not None]


@pytest.fixture(scope="module")
def suite(shared_data: Path) -> Path:
    root = shared_data / "feedparser-tests" / "tests"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


def _run(samples: list[Sample]) -> tuple[Counter[str], list[tuple[Sample, ParsedFeed | None]]]:
    counts: Counter[str] = Counter()
    results: list[tuple[Sample, ParsedFeed | None]] = []
    for sample in samples:
        try:
            parsed = parse_feed(
                sample.body,
                base_url=f"http://127.0.0.1/{sample.path.name}",
                response_headers=sample.headers or None,
            )
        except PermanentError as exc:
            counts[f"refused:{exc.error_class}"] += 1
            results.append((sample, None))
            continue
        counts["parsed"] += 1
        counts["bozo"] += parsed.bozo
        results.append((sample, parsed))
    return counts, results


def test_no_sample_crashes_the_parser(suite: Path) -> None:
    """Every sample either parses or is refused with a PermanentError; none raises anything else."""
    started = time.monotonic()
    samples = [s for folder in ("wellformed", "illformed", "encoding", "entities")
               for s in _samples(suite, folder)]  # fmt: skip
    counts, _results = _run(samples)
    elapsed = time.monotonic() - started
    total = sum(1 for _ in suite.rglob("*.xml"))
    print(f"\nfeedparser samples: {len(samples)} of {total} files, {dict(counts)}, {elapsed:.1f}s")
    assert len(samples) > 2000
    assert counts["parsed"] + sum(v for k, v in counts.items() if k.startswith("refused")) == len(
        samples
    )
    # Refusals are only "not a feed" (documents with no RSS/Atom root) and unsafe XML.
    assert {k for k in counts if k.startswith("refused")} <= {
        "refused:not_a_feed",
        "refused:unsafe_xml",
    }
    assert counts["parsed"] > 0.9 * len(samples)


def test_illformed_samples_are_recorded_as_bozo(suite: Path) -> None:
    """Samples whose Expect says bozo come out bozo (or refused as not a feed)."""
    samples = [s for s in _samples(suite, "illformed") if re.match(r"^bozo\b", s.expect)]
    assert samples
    _counts, results = _run(samples)
    missed = [s.path.name for s, parsed in results if parsed is not None and not parsed.bozo]
    assert not missed


def test_wellformed_samples_are_not_bozo(suite: Path) -> None:
    """Samples whose Expect says ``not bozo`` are not flagged by us either."""
    samples = [s for s in _samples(suite, "wellformed") if s.expect.startswith("not bozo")]
    _counts, results = _run(samples)
    flagged = [s.path.name for s, parsed in results if parsed is not None and parsed.bozo]
    assert len(samples) > 100
    assert not flagged


def test_encoding_samples_decode_as_feedparser_expects(suite: Path) -> None:
    """For encoding samples whose Expect checks a decoded title or the encoding, we agree."""
    samples = _samples(suite, "encoding")
    _counts, results = _run(samples)
    checked = 0
    disagree: list[str] = []
    for sample, parsed in results:
        if parsed is None or sample.guarded:
            continue
        if "title" not in sample.expect and "encoding" not in sample.expect:
            continue
        verdict = _evaluate(sample.expect, parsed)
        if verdict is None:
            continue
        checked += 1
        if not verdict:
            disagree.append(f"{sample.path.name}: {sample.expect} (ours: {parsed.encoding!r})")
    print(f"\nencoding samples checked: {checked}, disagreements: {len(disagree)}")
    assert checked >= 50
    assert not disagree, disagree
