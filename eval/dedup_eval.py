"""Evidence for the dedup thresholds in worker/dedup.py.

Run from the repository root::

    python -m eval.dedup_eval [--data-dir ../shared/data] [--seed 13]

Four pair sets, each scored with the production rules (:func:`worker.dedup.decide`):

(c) synthetic syndication: real bodies (fundus + article-extraction-benchmark)
    against generated copies (boilerplate added, tail trimmed, headline
    edited, words edited, re-encoded, a feed-summary-length lead), negatives
    are other articles, hardest first (same outlet, same injected boilerplate).
    Documents are split by a fixed seed: thresholds are *chosen* on the tune
    half and *reported* on the test half.
(d) retitled feed items (rss_link_db_2023): the same URL re-published with a
    new headline/description -- the short-body (title) path.
(a) Gedikli story chains and (b) ECB+ events: "same story" as judged by
    people, a looser notion than a copy; reported for honesty, not tuned on.

Recall is reported twice: ``match`` (the decision given the pair) and
``e2e`` (the pair is also found through the shared LSH/title band keys, i.e.
what the worker will actually catch).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from worker.dedup import (
    DEFAULT_THRESHOLDS,
    Fingerprint,
    Thresholds,
    decide,
    fingerprint,
    index_keys,
    is_short_signature,
    lsh_band_keys,
    query_keys,
    signature_similarity,
    title_band_keys,
    title_similarity,
)

WINDOW = timedelta(days=3)
BASE_TIME = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pair:
    """One labelled pair with its precomputed features."""

    kind: str
    label: bool
    exact: bool
    in_window: bool
    short: bool
    body: float
    title: float
    candidate: bool


def make_pair(kind: str, label: bool, a: Fingerprint, b: Fingerprint, window: timedelta) -> Pair:
    """Features of (new=a, existing=b), exactly as match() computes them."""
    exact = bool(a.content_hash) and a.content_hash == b.content_hash
    if a.published_at is None or b.published_at is None:
        in_window = True
    else:
        in_window = abs(a.published_at - b.published_at) <= window
    candidate = exact or _candidate(a, b, window)
    return Pair(
        kind=kind,
        label=label,
        exact=exact,
        in_window=in_window,
        short=is_short_signature(a.signature) or is_short_signature(b.signature),
        body=signature_similarity(a.signature, b.signature),
        title=title_similarity(a.title, b.title),
        candidate=candidate,
    )


def _candidate(a: Fingerprint, b: Fingerprint, window: timedelta) -> bool:
    """Whether query_keys(a) and index_keys(b) intersect, without materialising
    every day of a long window (the title keys of ``b`` all carry b's day)."""
    if set(lsh_band_keys(a.signature)) & set(lsh_band_keys(b.signature)):
        return True
    if a.published_at is None or b.published_at is None:
        return False
    if window <= timedelta(days=30):  # the real thing, as storage will do it
        return bool(set(query_keys(a, window=window)) & set(index_keys(b)))
    day_a = a.published_at.astimezone(UTC).date()
    day_b = b.published_at.astimezone(UTC).date()
    if abs((day_a - day_b).days) > window.days + 1:
        return False
    return bool(set(title_band_keys(a.title, b.published_at)) & set(index_keys(b)))


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int
    tn: int
    e2e_tp: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def e2e_recall(self) -> float:
        return self.e2e_tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(pairs: Iterable[Pair], th: Thresholds) -> Score:
    tp = fp = fn = tn = e2e = 0
    for p in pairs:
        pred, _ = decide(
            exact=p.exact,
            in_window=p.in_window,
            short=p.short,
            body=p.body,
            title=p.title,
            thresholds=th,
        )
        if p.label and pred:
            tp += 1
            e2e += p.candidate
        elif p.label:
            fn += 1
        elif pred:
            fp += 1
        else:
            tn += 1
    return Score(tp, fp, fn, tn, e2e)


# -- (c) synthetic syndication ------------------------------------------------------
BOILERPLATE = [
    "Subscribe to our newsletter for the latest updates.",
    "Sign up for our daily briefing and get the top stories in your inbox every morning.",
    "Advertisement",
    "Share this article on Facebook Twitter WhatsApp Email",
    "© 2024 All rights reserved. This material may not be published, broadcast, rewritten "
    "or redistributed without permission.",
    "Reporting by staff; editing by the news desk. Our standards: The Trust Principles.",
    "Follow us on Telegram and X for breaking news.",
    "Read more: related coverage and analysis from our correspondents.",
    "We use cookies to improve your experience. By continuing you agree to our cookie policy.",
    "This article was originally published by a partner outlet and is republished with permission.",
    "Most read",
    "Comments are closed for this article.",
]
SWAPS = {
    "said": "stated",
    "says": "states",
    "the": "this",
    "and": "as well as",
    "on": "upon",
    "big": "large",
    "but": "however",
    "der": "dieser",
    "und": "sowie",
}
HEADLINE_PREFIXES = ["UPDATE 1-", "Breaking: ", "Analysis: ", "WATCH: ", ""]
HEADLINE_SUFFIXES = [" - Reuters", " | DW", " – The Guardian", " (video)", ""]


@dataclass(frozen=True)
class Doc:
    key: str
    outlet: str
    title: str
    body: str


def _slug_title(url: str) -> str:
    slug = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    slug = re.sub(r"\.[a-z]+$", "", slug)
    words = [w for w in re.split(r"[-_]+", slug) if w and not re.fullmatch(r"[0-9a-f]{6,}|\d+", w)]
    return " ".join(words).capitalize()


def load_docs(data: Path) -> list[Doc]:
    docs: list[Doc] = []
    fundus = json.loads((data / "fundus" / "fundus_ground_truth.json").read_text("utf-8"))
    for key, item in sorted(fundus.items()):
        docs.append(
            Doc(key, item.get("publisher") or key, item.get("title") or "", item["articleBody"])
        )
    aeb = json.loads(
        (data / "article-extraction-benchmark" / "ground-truth.json").read_text("utf-8")
    )
    for key, item in sorted(aeb.items()):
        url = item.get("url") or ""
        host = (urlsplit(url).hostname or key).removeprefix("www.")
        docs.append(Doc(key, host, _slug_title(url), item["articleBody"]))
    return [d for d in docs if len(d.body.split()) >= 80]


def _paragraphs(body: str) -> list[str]:
    return [p for p in re.split(r"\n+", body) if p.strip()]


def _edit_words(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue  # dropped word
        if r < rate and w.lower() in SWAPS:
            out.append(SWAPS[w.lower()])
            continue
        if r < rate * 0.6 and w.isalpha():
            out.append(w + "s")  # inflection change
            continue
        out.append(w)
    return " ".join(out)


def _reencode(text: str) -> str:
    table = str.maketrans({'"': "\u201c", "'": "\u2019", "-": "\u2013", " ": "\u00a0"})
    return text.translate(table).replace("\n", "\r\n\r\n").upper()


def _edit_headline(title: str, rng: random.Random) -> str:
    words = title.split()
    if len(words) > 4 and rng.random() < 0.5:
        i = rng.randrange(len(words))
        words[i] = SWAPS.get(words[i].lower(), words[i])
        if rng.random() < 0.5:
            words = words[: max(4, len(words) - 2)]  # shortened headline
    return rng.choice(HEADLINE_PREFIXES) + " ".join(words) + rng.choice(HEADLINE_SUFFIXES)


def variants(doc: Doc, rng: random.Random, others: Sequence[Doc]) -> list[tuple[str, str, str]]:
    """(variant kind, title, body) copies of ``doc`` a syndication chain would produce."""
    paras = _paragraphs(doc.body)
    other = rng.choice(others)
    related = f"Read more: {other.title}"

    def boiler(n: int) -> list[str]:
        return rng.sample(BOILERPLATE, n)

    out = [
        ("boilerplate", doc.title, "\n".join([*boiler(2), *paras, related, *boiler(3)])),
        ("reencoded", doc.title, _reencode(doc.body)),
        ("edited_headline", _edit_headline(doc.title, rng), doc.body),
        ("word_edits", doc.title, _edit_words(doc.body, rng, 0.03)),
    ]
    if len(paras) >= 4:
        cut = rng.randint(1, min(3, len(paras) - 3))
        out.append(("trimmed_tail", doc.title, "\n".join(paras[:-cut])))
        out.append(
            (
                "combined",
                _edit_headline(doc.title, rng),
                "\n".join(
                    [*boiler(2), *[_edit_words(p, rng, 0.02) for p in paras[:-cut]], *boiler(2)]
                ),
            )
        )
    lead = " ".join(doc.body.split()[: rng.randint(20, 35)])
    out.append(("summary_vs_full", _edit_headline(doc.title, rng), lead))
    return out


def synthetic_pairs(docs: Sequence[Doc], seed: int) -> tuple[list[Pair], list[Pair], float]:
    """(tune pairs, test pairs, ms per fingerprint) for the synthetic set."""
    rng = random.Random(seed)
    order = list(docs)
    rng.shuffle(order)
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    timings: list[float] = []

    def fp(title: str, body: str, when: datetime) -> Fingerprint:
        t0 = time.perf_counter()
        result = fingerprint(title=title, body=body, published_at=when)
        timings.append(time.perf_counter() - t0)
        return result

    results: list[list[Pair]] = []
    for half in halves:
        pairs: list[Pair] = []
        base = {d.key: fp(d.title, d.body, BASE_TIME) for d in half}
        for doc in half:
            for kind, title, body in variants(doc, rng, half):
                when = BASE_TIME + timedelta(hours=rng.uniform(0, 36))
                pairs.append(
                    make_pair(f"pos:{kind}", True, fp(title, body, when), base[doc.key], WINDOW)
                )
        # Negatives: every same-outlet pair (hardest), plus the same pairs with one
        # shared boilerplate block around both bodies, plus random pairs.
        by_outlet: dict[str, list[Doc]] = defaultdict(list)
        for doc in half:
            by_outlet[doc.outlet].append(doc)
        for group in by_outlet.values():
            for x, y in itertools.combinations(group, 2):
                pairs.append(make_pair("neg:same_outlet", False, base[x.key], base[y.key], WINDOW))
                shared = rng.sample(BOILERPLATE, 4)
                bx = "\n".join([*shared[:2], x.body, *shared[2:]])
                by = "\n".join([*shared[:2], y.body, *shared[2:]])
                pairs.append(
                    make_pair(
                        "neg:shared_boilerplate",
                        False,
                        fp(x.title, bx, BASE_TIME),
                        fp(y.title, by, BASE_TIME),
                        WINDOW,
                    )
                )
                lx = " ".join(x.body.split()[:30])
                ly = " ".join(y.body.split()[:30])
                pairs.append(
                    make_pair(
                        "neg:same_outlet_summaries",
                        False,
                        fp(x.title, lx, BASE_TIME),
                        fp(y.title, ly, BASE_TIME),
                        WINDOW,
                    )
                )
        for _ in range(3 * len(half)):
            x, y = rng.sample(half, 2)
            pairs.append(make_pair("neg:random", False, base[x.key], base[y.key], WINDOW))
        results.append(pairs)
    ms = 1000 * sum(timings) / len(timings)
    return results[0], results[1], ms


# -- (d) retitled feed items ----------------------------------------------------------
def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def retitled_pairs(data: Path, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Same URL re-titled (positives) vs other items of the same source within days."""
    path = data / "rss_link_db_2023" / "same_url_retitled_groups_2023.jsonl.gz"
    groups: list[dict[str, object]] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        groups.extend(json.loads(line) for line in handle)
    rng = random.Random(seed)
    rng.shuffle(groups)
    items: list[tuple[str, list[Fingerprint]]] = []
    for group in groups:
        versions = group["versions"]
        assert isinstance(versions, list)
        fps = [
            fingerprint(
                title=str(v.get("title") or ""),
                body=str(v.get("description") or ""),
                published_at=_parse_date(v.get("date_published")),
            )
            for v in versions
        ]
        host = (urlsplit(str(group["url"])).hostname or "").removeprefix("www.")
        items.append((host, fps))
    halves: list[list[Pair]] = []
    for part in (items[: len(items) // 2], items[len(items) // 2 :]):
        pairs: list[Pair] = []
        for _, fps in part:
            for x, y in itertools.combinations(fps[:6], 2):
                pairs.append(make_pair("pos:retitled", True, x, y, timedelta(days=365)))
        for (hx, fx), (hy, fy) in itertools.combinations(part, 2):
            if hx == hy:
                # Other stories of the same outlet, as if published the same day.
                a = replace(fx[0], published_at=BASE_TIME)
                b = replace(fy[0], published_at=BASE_TIME)
                pairs.append(make_pair("neg:same_outlet_feed", False, a, b, WINDOW))
        halves.append(pairs)
    return halves[0], halves[1]


# -- (a) Gedikli and (b) ECB+ ---------------------------------------------------------
def gedikli_pairs(data: Path, window: timedelta) -> list[Pair]:
    root = data / "news_story_chains_gedikli"
    texts = root / "gedikli-business_energy_news_dataset-2021-06-29-article_texts.csv"
    fps: dict[str, Fingerprint] = {}
    with texts.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            fps[row["url"]] = fingerprint(
                title=row["title"], body=row["text"], published_at=_parse_date(row["date"])
            )
    pairs: list[Pair] = []
    labels = root / "story_pairs-2021-06-29-coder1-gedikli.csv"
    with labels.open(encoding="utf-8-sig") as handle:
        for a, b, label in csv.reader(handle, delimiter=";"):
            pairs.append(make_pair("gedikli", label.strip() == "1", fps[a], fps[b], window))
    return pairs


def ecb_pairs(data: Path, seed: int) -> list[Pair]:
    docs = [
        json.loads(line)
        for line in (data / "ecbplus" / "ecbplus_docs.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    fps: dict[str, Fingerprint] = {}
    for doc in docs:
        lines = [ln for ln in doc["text"].splitlines() if ln.strip()]
        title = next((ln for ln in lines if not ln.startswith("http")), "")
        fps[doc["doc"]] = fingerprint(title=title, body=doc["text"], published_at=None)
    by_topic: dict[int, list[dict[str, object]]] = defaultdict(list)
    for doc in docs:
        by_topic[int(doc["topic"])].append(doc)
    pairs: list[Pair] = []
    for group in by_topic.values():
        for x, y in itertools.combinations(group, 2):
            same = x["subtopic"] == y["subtopic"]
            kind = "ecb:same_event" if same else "ecb:same_topic_other_event"
            pairs.append(make_pair(kind, same, fps[str(x["doc"])], fps[str(y["doc"])], WINDOW))
    rng = random.Random(seed)
    for _ in range(3000):
        x, y = rng.sample(docs, 2)
        if x["topic"] != y["topic"]:
            pairs.append(
                make_pair("ecb:other_topic", False, fps[str(x["doc"])], fps[str(y["doc"])], WINDOW)
            )
    return pairs


# -- tuning and reporting -------------------------------------------------------------
def _grid(start: float, stop: float, step: float) -> list[float]:
    n = round((stop - start) / step)
    return [round(start + i * step, 4) for i in range(n + 1)]


def tune(long_pairs: Sequence[Pair], short_pairs: Sequence[Pair]) -> Thresholds:
    """Pick thresholds on the tune halves.

    Rule: among settings with precision >= 0.99 (long bodies) / 0.98 (short
    bodies) pick the best F1, ties going to the *highest* thresholds (the most
    conservative setting that is as good), because a false merge hides an
    article while a miss only stores a copy.
    """
    best: tuple[float, float, float, Thresholds] | None = None
    long_only = [p for p in long_pairs if not p.short]
    for dup in _grid(0.2, 0.8, 0.05):
        for rel in _grid(0.1, dup, 0.1):
            for trel in _grid(0.3, 0.9, 0.1):
                th = replace(
                    DEFAULT_THRESHOLDS, body_duplicate=dup, body_related=rel, title_related=trel
                )
                s = score(long_only, th)
                if s.precision < 0.99:
                    continue
                key = (s.f1, dup + rel + trel, s.precision, th)
                if best is None or key[:3] > best[:3]:
                    best = key
    chosen = best[3] if best else DEFAULT_THRESHOLDS
    best_short: tuple[float, float, float, Thresholds] | None = None
    short_only = [p for p in short_pairs if p.short]
    for ts in _grid(0.4, 0.9, 0.05):
        for sb in (0.05, 0.1, 0.2, 1.01):  # floor: see docs/dedup.md
            for st in _grid(0.2, 0.5, 0.1):  # floor: see docs/dedup.md
                th = replace(chosen, title_short=ts, short_body=sb, short_title=st)
                s = score(short_only, th)
                if s.precision < 0.98:
                    continue
                key = (s.f1, ts + sb + st, s.precision, th)
                if best_short is None or key[:3] > best_short[:3]:
                    best_short = key
    if best_short is not None:
        chosen = best_short[3]
    return chosen


def _row(name: str, pairs: Sequence[Pair], th: Thresholds) -> str:
    s = score(pairs, th)
    pos = s.tp + s.fn
    neg = s.fp + s.tn
    return (
        f"| {name:<38} | {pos:>6} | {neg:>6} | {s.precision:6.3f} | {s.recall:6.3f} | "
        f"{s.f1:6.3f} | {s.e2e_recall:6.3f} |"
    )


def report(title: str, groups: dict[str, list[Pair]], th: Thresholds) -> None:
    print(f"\n### {title}\n")
    cols = ["pos", "neg", "prec", "recall", "F1", "e2e rec"]
    print(f"| {'pairs':<38} | " + " | ".join(f"{c:>6}" for c in cols) + " |")
    print("|" + "-" * 40 + "|" + "|".join("-------:" for _ in cols) + "|")
    for name, pairs in groups.items():
        print(_row(name, pairs, th))


def _by_kind(pairs: Sequence[Pair], prefix: str = "") -> dict[str, list[Pair]]:
    out: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        out[prefix + p.kind].append(p)
    return dict(sorted(out.items()))


def _recall_by_kind(pairs: Sequence[Pair], th: Thresholds) -> None:
    print("\n| kind | n | flagged same (rate) |\n|---|---:|---:|")
    for kind, group in _by_kind(pairs).items():
        s = score(group, th)
        flagged = s.tp + s.fp
        print(f"| {kind} | {len(group)} | {flagged / len(group):.3f} |")


def main(argv: Sequence[str] | None = None) -> int:
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-tune", action="store_true", help="report the shipped thresholds only")
    args = parser.parse_args(argv)
    data: Path = args.data_dir
    if not data.is_dir():
        print(f"data directory {data} not found", file=sys.stderr)
        return 2

    docs = load_docs(data)
    syn_tune, syn_test, ms = synthetic_pairs(docs, args.seed)
    ret_tune, ret_test = retitled_pairs(data, args.seed)
    print(f"synthetic: {len(docs)} real bodies; {len(syn_tune)} tune / {len(syn_test)} test pairs")
    print(f"fingerprint: {ms:.2f} ms on average over the synthetic bodies")
    long_words = " ".join(d.body for d in docs).split()[:5000]
    t0 = time.perf_counter()
    for _ in range(20):
        fingerprint(title="t", body=" ".join(long_words), published_at=None)
    print(f"fingerprint: {(time.perf_counter() - t0) * 1000 / 20:.2f} ms for a 5,000-word body")

    shipped = DEFAULT_THRESHOLDS
    if not args.no_tune:
        tuned = tune(syn_tune, [*syn_tune, *ret_tune])
        print(f"\ntuned on the tune halves: {tuned}")
        print(f"shipped in worker/dedup.py: {shipped}")
        if tuned != shipped:
            print(
                "NOTE: tuned thresholds differ from the shipped ones; report uses the shipped ones"
            )
    th = shipped

    report(
        "(c)+(d) held-out test half, shipped thresholds",
        {
            "synthetic copies, long bodies": [p for p in syn_test if not p.short],
            "synthetic incl. summary-vs-full": syn_test,
            "retitled feed items (short)": ret_test,
            "ALL syndication test pairs": [*syn_test, *ret_test],
        },
        th,
    )
    _recall_by_kind([*syn_test, *ret_test], th)

    ged = gedikli_pairs(data, WINDOW)
    ged_nowin = gedikli_pairs(data, timedelta(days=3650))
    ecb = ecb_pairs(data, args.seed)
    report(
        "(a) Gedikli same-story chains and (b) ECB+ same event (not tuned on)",
        {
            "gedikli, 3-day window": ged,
            "gedikli, no window": ged_nowin,
            "ecb+ same event vs same topic": [p for p in ecb if p.kind != "ecb:other_topic"],
            "ecb+ all (incl. other topics)": ecb,
        },
        th,
    )
    _recall_by_kind(ecb, th)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
