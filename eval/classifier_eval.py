"""Evaluate ``worker.classify`` against the hand-labelled sets in ``eval/labels/``.

Run from the repository root::

    python -m eval.classifier_eval [--split dev|test|test2|external|all] [--rules-only]
                                   [--show-errors] [--classifier hybrid|neighbours]
                                   [--novelty] [--data-dir PATH]

Prints precision/recall/F1 overall, per source data set and per language, the mean time
per article, and (with ``--show-errors``) every false positive and false negative with its
score and title. ``--rules-only`` scores the rule layer alone (no learned second stage),
so both can be compared; ``--classifier neighbours`` scores the optional neighbour method
(``INGEST_CLASSIFIER=neighbours``; needs the ``neighbours`` extra). Rules, model and
thresholds are tuned/trained on ``dev`` only; ``test`` and ``test2`` are held out
(``test2``: 1,200 later feed items labelled under the same guide as most of dev, see
``eval/labels/HOLDOUT2_PLAN.md``; it is reported per feed-flag stratum and re-weighted to
the feed dump's strata too); ``external`` (255 full fundus articles in 20+ languages,
labelled after the current model was fixed) is a further check, reported apart.

The labels were made by reading each item (see docs/classifier.md), never by running the
rules. The raw data stay in ``../shared/data`` (not copied into the repo).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # allow `python eval/classifier_eval.py`
    sys.path.insert(0, str(REPO_ROOT))

from worker.classify import (  # noqa: E402
    CLASSIFIER_VERSION,
    METHODS,
    Classification,
    classifier_version,
    classify,
    classify_rules_only,
)

LABELS_DIR = REPO_ROOT / "eval" / "labels"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
SOURCES = (
    "rss_link_db_2023",
    "rss_link_db_2023_extra",
    "rss_link_db_2023_extra2",
    "rss_link_db_2023_extra3",
    "rss_link_db_2023_extra4",
    "rss_link_db_2023_test2",
    "rss_link_db_2023_test3",
    "rss_link_db_2023_test4",
    "ag_news",
    "ukraine_news_bias_2014",
    "fundus",
)
EXTRA_SOURCES = (
    "rss_link_db_2023_extra",
    "rss_link_db_2023_extra2",
    "rss_link_db_2023_extra3",
    "rss_link_db_2023_extra4",
)
"""Further feed items of the same 2023 feed dump, labelled later (600, twice 1,600 and 2,000
drawn by ``eval/sample_extra.py``); ``dev`` split only."""
TEST2_SOURCE = "rss_link_db_2023_test2"
"""The second held-out split: 1,200 feed items of the same dump, split ``test2`` only."""
TEST3_SOURCE = "rss_link_db_2023_test3"
"""The third held-out split (issue #18's final figure): 1,000 feed items, split ``test3``."""
TEST4_SOURCE = "rss_link_db_2023_test4"
"""The fourth held-out split (``eval/labels/HOLDOUT4_PLAN.md``): 1,000 feed items that judge
the retrained distilled student, split ``test4``."""
HELD_OUT_FEED_SOURCES = {TEST2_SOURCE: "test2", TEST3_SOURCE: "test3", TEST4_SOURCE: "test4"}
MULTILINGUAL_SOURCE = "multilingual"
"""Ukrainian RSS leads and Russian Telegram posts (``eval/labels/MULTILINGUAL_PLAN.md``):
splits ``ml_dev`` (for developing the non-English path) and ``ml_test`` (held out)."""
STRATA = ("ukr+sec", "ukr_only", "sec_only", "other")
SPLITS = ("dev", "test", "test2", "test3", "test4", "external", "ml_dev", "ml_test")
"""``dev`` and ``ml_dev`` are for development; the others are held out (scored when named)."""


@dataclass(frozen=True)
class Item:
    """One labelled item, ready to classify."""

    source: str
    id: str
    split: str
    label: int
    title: str
    body: str
    language: str
    stratum: str = ""
    """The feed-flag sampling stratum of a 2023 feed item (``""`` for other sources)."""


@dataclass(frozen=True)
class Result:
    item: Item
    prediction: Classification
    millis: float


LONG_BODY_CHARS = 20_000


def long_body(items: list[Item]) -> str:
    """A 20,000-character article made of labelled bodies: the worst case for latency
    (the rule layer scans the whole body), the same text for every method and run."""
    return " ".join(items[i % len(items)].body for i in range(200))[:LONG_BODY_CHARS]


def _read_labels(name: str) -> dict[str, tuple[int, str]]:
    with (LABELS_DIR / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        return {row["id"]: (int(row["label"]), row["split"]) for row in csv.DictReader(fh)}


def load_items(data_dir: Path) -> Iterator[Item]:
    """Yield every labelled item from the five sources (raises if data are missing).

    ``rss_link_db_2023_extra*`` items are keyed by their link in
    ``world_news_entries_2023.jsonl.gz`` and are all in the ``dev`` split, so the ``test``
    split is exactly the same 484 items as before they were added.
    """
    labels = _read_labels("rss_link_db_2023")
    path = data_dir / "rss_link_db_2023" / "to_label_stratified_800.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if str(i) in labels:
                label, split = labels[str(i)]
                yield Item(
                    "rss_link_db_2023",
                    str(i),
                    split,
                    label,
                    row["title"],
                    row["description"],
                    "en",
                    row["stratum"],
                )

    extra_labels = {
        source: _read_labels(source) for source in (*EXTRA_SOURCES, *HELD_OUT_FEED_SOURCES)
    }
    owner: dict[str, str] = {}
    for source, labels in extra_labels.items():
        want = HELD_OUT_FEED_SOURCES.get(source, "dev")
        bad = sorted(k for k, (_, split) in labels.items() if split != want)
        if bad:  # no file may move items into (or change) another split
            raise ValueError(f"{source}: rows not in the {want} split: {bad[:3]}")
        for labelled in labels:
            if labelled in owner:
                raise ValueError(f"{labelled} is labelled in both {owner[labelled]} and {source}")
            owner[labelled] = source
    path = data_dir / "rss_link_db_2023" / "world_news_entries_2023.jsonl.gz"
    found: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            link: str = doc["link"]
            if link in owner and link not in found:
                found.add(link)
                source = owner[link]
                label, split = extra_labels[source][link]
                yield Item(
                    source,
                    link,
                    split,
                    label,
                    doc["title"],
                    doc["description"] or "",
                    "en",
                    feed_stratum(doc),
                )
    if len(found) != len(owner):
        raise ValueError(f"extra feed items: {len(owner) - len(found)} labelled links not found")

    labels = _read_labels("ag_news")
    with (data_dir / "ag_news" / "test.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for i, fields in enumerate(reader):
            if str(i) in labels:
                label, split = labels[str(i)]
                yield Item("ag_news", str(i), split, label, fields[1], fields[2], "en")

    labels = _read_labels("ukraine_news_bias_2014")
    path = data_dir / "ukraine_news_bias_2014" / "articles.jsonl"
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["id"] not in labels:
                continue
            label, split = labels[doc["id"]]
            text: str = doc["text"]
            first, _, rest = text.partition("\n")
            body = rest if first.strip() == doc["title"].strip() else text
            yield Item("ukraine_news_bias_2014", doc["id"], split, label, doc["title"], body, "en")

    yield from _fundus_items(data_dir)
    yield from _multilingual_items(data_dir)


def _multilingual_items(data_dir: Path) -> Iterator[Item]:
    """The labelled Ukrainian and Russian items (``ml_dev`` / ``ml_test``), with the
    language their source gives (``uk``/``ru``) and the publisher-side sampling stratum."""
    with (LABELS_DIR / f"{MULTILINGUAL_SOURCE}.csv").open(newline="", encoding="utf-8") as fh:
        labels = {row["id"]: row for row in csv.DictReader(fh)}
    found = 0
    for name in ("news_uk.jsonl.gz", "news_ru.jsonl.gz"):
        with gzip.open(data_dir / "multilingual_news" / name, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                row = labels.get(doc["id"])
                if row is None:
                    continue
                found += 1
                yield Item(
                    MULTILINGUAL_SOURCE,
                    doc["id"],
                    row["split"],
                    int(row["label"]),
                    doc["title"] or "",
                    doc["text"] or "",
                    doc["lang"],
                    row["stratum"],
                )
    if found != len(labels):
        raise ValueError(f"multilingual: {len(labels) - found} labelled ids not found")


def _fundus_items(data_dir: Path) -> Iterator[Item]:
    """The 255 full articles (2023-2026, 20+ languages) of ``fundus/``: split ``external``.

    Why a third split: these are the production case - whole extracted articles in many
    languages, not feed snippets - and they were labelled after every model choice, so they
    are a check that nothing was tuned on. Their language is detected exactly as the worker
    detects it (``worker.extract.detect_language`` over title and body).
    """
    from worker.extract import detect_language

    labels = _read_labels("fundus")
    with (data_dir / "fundus" / "fundus_ground_truth.json").open(encoding="utf-8") as fh:
        docs = json.load(fh)
    missing = sorted(set(labels) - set(docs))
    if missing:
        raise ValueError(f"fundus: labelled ids not found: {missing[:3]}")
    for key in sorted(labels):
        doc = docs[key]
        title, body = doc.get("title") or "", doc.get("articleBody") or ""
        language = detect_language(f"{title}. {body}") or "und"
        label, split = labels[key]
        yield Item("fundus", key, split, label, title, body, language)


def feed_stratum(doc: dict[str, object]) -> str:
    """The sampling stratum from the feed dump's own keyword flags (never used as a label)."""
    ukr, sec = bool(doc["kw_ukraine"]), bool(doc["kw_security"])
    return "ukr+sec" if ukr and sec else "ukr_only" if ukr else "sec_only" if sec else "other"


def dump_stratum_shares(data_dir: Path) -> dict[str, float]:
    """Each stratum's share of the distinct titled items of the 2023 feed dump.

    Why: ``test2`` was drawn 300/450/300/150 from the strata to get enough positives and hard
    negatives, so its raw precision over-represents the Ukraine strata; re-weighting each
    stratum to its share of the dump estimates what a reader of the whole feed would see.
    """
    counts = dict.fromkeys(STRATA, 0)
    seen: set[str] = set()
    path = data_dir / "rss_link_db_2023" / "world_news_entries_2023.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["title"] and doc["link"] not in seen:
                seen.add(doc["link"])
                counts[feed_stratum(doc)] += 1
    total = sum(counts.values())
    return {stratum: n / total for stratum, n in counts.items()}


def run(items: list[Item], *, rules_only: bool = False, method: str = "hybrid") -> list[Result]:
    """Classify every item (combined classifier, or the rule layer alone), timing each call."""
    results: list[Result] = []
    if not rules_only:  # load a method's models before the clock starts
        classify(title="Warm-up", body="", language="en", method=method)
    for item in items:
        start = time.perf_counter()
        if rules_only:
            prediction = classify_rules_only(title=item.title, body=item.body)
        else:
            prediction = classify(
                title=item.title, body=item.body, language=item.language, method=method
            )
        results.append(Result(item, prediction, (time.perf_counter() - start) * 1000.0))
    return results


@dataclass(frozen=True)
class Metrics:
    n: int
    positives: int
    tp: int
    fp: int
    fn: int

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


def metrics(results: list[Result]) -> Metrics:
    """Confusion counts for one group of results."""
    tp = sum(1 for r in results if r.item.label and r.prediction.is_ukraine_security)
    fp = sum(1 for r in results if not r.item.label and r.prediction.is_ukraine_security)
    fn = sum(1 for r in results if r.item.label and not r.prediction.is_ukraine_security)
    positives = sum(r.item.label for r in results)
    return Metrics(len(results), positives, tp, fp, fn)


def _row(name: str, m: Metrics) -> str:
    return (
        f"{name:<34} n={m.n:<5} pos={m.positives:<4} tp={m.tp:<4} fp={m.fp:<3} fn={m.fn:<3} "
        f"P={m.precision:.3f} R={m.recall:.3f} F1={m.f1:.3f}"
    )


def weighted_pr(results: list[Result], weights: dict[str, float]) -> tuple[float, float, float]:
    """Precision, recall and F1 with each stratum's items re-weighted to a total of
    ``weights[stratum]`` (all results must carry a stratum)."""
    per_stratum = {s: sum(1 for r in results if r.item.stratum == s) for s in weights}
    tp = fp = fn = 0.0
    for r in results:
        w = weights[r.item.stratum] / per_stratum[r.item.stratum]
        predicted = r.prediction.is_ukraine_security
        tp += w * (r.item.label and predicted)
        fp += w * (not r.item.label and predicted)
        fn += w * (r.item.label and not predicted)
    p = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    return p, rec, (2 * p * rec / (p + rec) if p + rec else 0.0)


def report(
    results: list[Result], *, show_errors: bool, shares: dict[str, float] | None = None
) -> str:
    """Human-readable report for one split (``shares``: the dump's strata, for ``test2``)."""
    lines = [_row("overall", metrics(results))]
    for source in SOURCES:
        group = [r for r in results if r.item.source == source]
        if group:
            lines.append(_row(f"  source={source}", metrics(group)))
    for stratum in STRATA:
        group = [r for r in results if r.item.stratum == stratum]
        if group:
            lines.append(_row(f"  feed stratum={stratum}", metrics(group)))
    for lang, stratum in sorted(
        {(r.item.language, r.item.stratum) for r in results if r.item.source == "multilingual"}
    ):
        group = [r for r in results if (r.item.language, r.item.stratum) == (lang, stratum)]
        lines.append(_row(f"  {lang} stratum={stratum}", metrics(group)))
    if shares and results and all(r.item.stratum for r in results):
        for name, weights in (
            ("weighted to the feed dump's strata", shares),
            ("equal stratum weights (test's design)", dict.fromkeys(STRATA, 0.25)),
        ):
            p, rec, f1 = weighted_pr(results, weights)
            lines.append(f"  {name:<40} P={p:.3f} R={rec:.3f} F1={f1:.3f}")
    for lang in sorted({r.item.language for r in results}):
        lines.append(
            _row(f"  language={lang}", metrics([r for r in results if r.item.language == lang]))
        )
    if results:
        mean_ms = sum(r.millis for r in results) / len(results)
        worst = max(r.millis for r in results)
        lines.append(
            f"mean {mean_ms:.2f} ms/article (max {worst:.2f} ms) over {len(results)} items"
        )
    if show_errors:
        for kind, want in (("FP", 0), ("FN", 1)):
            errors = [
                r
                for r in results
                if r.item.label == want and r.prediction.is_ukraine_security != bool(want)
            ]
            for r in sorted(errors, key=lambda r: (r.item.source, -r.prediction.score)):
                lines.append(
                    f"{kind} {r.item.source}:{r.item.id} score={r.prediction.score:.3f} "
                    f"| {r.item.title[:110]}"
                )
    return "\n".join(lines)


def nearest_dev_similarity(targets: list[Item], dev: list[Item]) -> list[float]:
    """Each target's highest embedding cosine to any dev item (the neighbour method's text).

    Why: the feed dump carries the same story from several outlets, so a held-out item may
    have a near-twin in dev; scoring the items without one apart shows how much of a
    figure is recognition of already-labelled stories.
    """
    import numpy as np

    from eval.train_embed_classifier import DEFAULT_CACHE, EmbeddingCache
    from worker.classify import neighbours as nb

    cache = EmbeddingCache(DEFAULT_CACHE, nb.Encoder(), "int8")
    dev_vectors = cache.embed([nb.embedding_text(i.title, i.body) for i in dev])
    target_vectors = cache.embed([nb.embedding_text(i.title, i.body) for i in targets])
    cache.save()
    return [float(v) for v in np.max(target_vectors @ dev_vectors.T, axis=1)]


def novelty_report(results: list[Result], dev: list[Item], shares: dict[str, float]) -> str:
    """``report`` for the items with and without a near-twin (cosine >= 0.8) in dev."""
    from eval.train_neighbours import TWIN_SIMILARITY

    similarity = nearest_dev_similarity([r.item for r in results], dev)
    lines = []
    for name, keep in (
        (f"no dev twin (nearest dev cosine < {TWIN_SIMILARITY})", lambda s: s < TWIN_SIMILARITY),
        (f"dev twin (cosine >= {TWIN_SIMILARITY})", lambda s: s >= TWIN_SIMILARITY),
    ):
        group = [r for r, s in zip(results, similarity, strict=True) if keep(s)]
        lines.append(f"\n-- {name} --")
        lines.append(report(group, show_errors=False, shares=shares))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "all"),
        default="test",
        help="which labelled split to score; 'all' scores every split (held-out ones too)",
    )
    parser.add_argument("--show-errors", action="store_true", help="list FP/FN with titles")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--rules-only", action="store_true", help="rule layer alone, without the learned stage"
    )
    parser.add_argument(
        "--classifier",
        choices=METHODS,
        default="hybrid",
        help="method to score (neighbours needs the optional extra)",
    )
    parser.add_argument(
        "--novelty",
        action="store_true",
        help="also score test2 items with no near-twin (cosine >= 0.8) in dev apart "
        "(embeds with MiniLM: needs the neighbours extra)",
    )
    args = parser.parse_args(argv)

    if not args.data_dir.is_dir():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2
    items = list(load_items(args.data_dir))
    splits = SPLITS if args.split == "all" else (args.split,)
    # Only the asked-for splits are classified: a held-out split is scored when named.
    results = run(
        [i for i in items if i.split in splits], rules_only=args.rules_only, method=args.classifier
    )
    # Long-body speed check independent of the data: a 20k-character article.
    # Median of 7 calls: one call is at the mercy of a GC pause or a scheduler hiccup.
    body = long_body(items)
    long_runs: list[float] = []
    for _ in range(7):
        start = time.perf_counter()
        if args.rules_only:
            classify_rules_only(title="Long article", body=body)
        else:
            classify(title="Long article", body=body, language="en", method=args.classifier)
        long_runs.append((time.perf_counter() - start) * 1000.0)
    long_ms = statistics.median(long_runs)
    long_max = max(long_runs)

    if args.rules_only:
        print(f"classifier {CLASSIFIER_VERSION} (rule layer only)")
    elif args.classifier == "neighbours":
        print(f"classifier {classifier_version(args.classifier)} (rules + lexicon + neighbours)")
    else:
        print(f"classifier {CLASSIFIER_VERSION} (rules + learned second stage)")
    weighted = {"test2", "test3", "test4"}
    shares = dump_stratum_shares(args.data_dir) if weighted & set(splits) else None
    for split in splits:
        print(f"\n== split={split} ==")
        group = [r for r in results if r.item.split == split]
        print(
            report(
                group, show_errors=args.show_errors, shares=shares if split in weighted else None
            )
        )
        if split == "test2" and args.novelty:
            dev = [i for i in items if i.split == "dev"]
            print(novelty_report(group, dev, shares or {}))
    if args.split == "all":
        print("\n== split=all ==")
        print(report(results, show_errors=False))
    print(f"\n20,000-character body: median {long_ms:.2f} ms of 7 calls (max {long_max:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
