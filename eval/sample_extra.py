"""Draw a further sample of 2023 feed items to label for the classifier's dev split.

Run from the repository root (standard library only)::

    python -m eval.sample_extra --out DIR [--salt extra2-20261201] [--per-stratum 400,600,400,200]
                                [--labelled rss_link_db_2023_extra]

    # the third draw (rss_link_db_2023_extra3):
    python -m eval.sample_extra --out DIR --salt extra3-20261201 \
        --labelled rss_link_db_2023_extra,rss_link_db_2023_extra2

Why a script: the dev split needs more labelled feed items than the first 600 extras, and a
reader must be able to re-draw exactly the same sample. Candidates are the items of
``world_news_entries_2023.jsonl.gz`` that are not already labelled (neither by link nor by
a casefolded title/description equal to a labelled item's - so no re-titled copy of a
**test** item can enter dev) and that have a title. Items are stratified by the feed's own
keyword flags (``ukr+sec``, ``ukr_only``, ``sec_only``, ``other``), which are used only for
sampling, never as labels. Within a stratum, candidates are ordered by SHA-1 of
``salt + link``; months are visited round-robin and in each month the candidate with the
smallest (items already taken from its feed / sqrt(feed's items in the stratum), hash) is
taken, so no single feed or month dominates.

Writes ``DIR/sample.jsonl`` (one item per line: ``n``, ``link``, ``stratum``, title,
description) and ``DIR/chunk_NN.txt`` files of 200 items in SHA-1-shuffled order that show
only a running number, the title and the first 400 description characters - no flags,
stratum, feed or classifier output - for labelling by reading.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import DEFAULT_DATA_DIR, LABELS_DIR, STRATA  # noqa: E402
from eval.classifier_eval import feed_stratum as _stratum  # noqa: E402

CHUNK = 200


def text_key(text: str | None) -> str:
    """Casefolded, whitespace-normalised text: two items with equal keys are one text."""
    return re.sub(r"\s+", " ", (text or "").casefold()).strip()


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def draw(
    data_dir: Path,
    salt: str,
    per_stratum: dict[str, int],
    labelled: tuple[str, ...] = ("rss_link_db_2023_extra",),
) -> list[dict[str, object]]:
    """The deterministic sample, in stratum order.

    Already labelled are the 800-item file and the label files named in ``labelled``
    (``eval/labels/<name>.csv``). Each draw names the files that existed before it: the
    ``extra2`` draw only the first 600 extras (its own items stay candidates, so a re-run
    draws the same sample), the ``extra3`` draw the first extras and ``extra2``.
    """
    banned_links: set[str] = set()
    banned_text: set[str] = set()
    path800 = data_dir / "rss_link_db_2023" / "to_label_stratified_800.csv"
    with path800.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            banned_links.add(row["link"])
            banned_text.update((text_key(row["title"]), text_key(row["description"])))
    first_extras: set[str] = set()
    for name in labelled:
        with (LABELS_DIR / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
            first_extras |= {row["id"] for row in csv.DictReader(fh)}

    candidates: dict[str, list[dict[str, object]]] = defaultdict(list)
    seen_links: set[str] = set()
    feed_sizes: dict[tuple[str, str], int] = defaultdict(int)
    path = data_dir / "rss_link_db_2023" / "world_news_entries_2023.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            link = doc["link"]
            if link in first_extras:
                if link not in banned_links:  # its first occurrence is the labelled item
                    banned_links.add(link)
                    banned_text.update((text_key(doc["title"]), text_key(doc["description"])))
                continue
            if not doc["title"] or link in banned_links or link in seen_links:
                continue
            seen_links.add(link)
            stratum = _stratum(doc)
            doc["stratum"] = stratum
            doc["hash"] = _sha(salt + link)
            candidates[stratum].append(doc)
            feed_sizes[(stratum, doc["source_feed"])] += 1

    banned_text.discard("")
    picked_text = set(banned_text)
    sample: list[dict[str, object]] = []
    for stratum in STRATA:
        by_month: dict[str, list[dict[str, object]]] = defaultdict(list)
        for doc in sorted(candidates[stratum], key=lambda d: str(d["hash"])):
            by_month[str(doc["date_published"])[:7]].append(doc)
        taken_per_feed: dict[str, int] = defaultdict(int)
        months = sorted(by_month)
        taken = 0
        while taken < per_stratum[stratum] and any(by_month.values()):
            for month in months:
                if taken >= per_stratum[stratum]:
                    break
                pool = by_month[month]
                while pool:
                    best = min(
                        pool,
                        key=lambda d: (
                            taken_per_feed[str(d["source_feed"])]
                            / math.sqrt(feed_sizes[(stratum, str(d["source_feed"]))]),
                            str(d["hash"]),
                        ),
                    )
                    pool.remove(best)
                    texts = {text_key(str(best["title"])), text_key(str(best["description"] or ""))}
                    texts.discard("")
                    if texts & picked_text:
                        continue  # a re-titled copy of a labelled or picked item
                    picked_text |= texts
                    taken_per_feed[str(best["source_feed"])] += 1
                    sample.append(best)
                    taken += 1
                    break
    return sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--salt", default="extra2-20261201")
    parser.add_argument("--per-stratum", default="400,600,400,200")
    parser.add_argument(
        "--shuffle",
        default="dump",
        help="salt of the order in which items are numbered and chunked; a second blind "
        "labelling pass uses another salt so that no two passes see the same order",
    )
    parser.add_argument("--chunk", type=int, default=CHUNK, help="items per chunk file")
    parser.add_argument(
        "--labelled",
        default="rss_link_db_2023_extra",
        help="comma-separated label files (eval/labels/NAME.csv) already labelled before "
        "this draw; extra3: rss_link_db_2023_extra,rss_link_db_2023_extra2",
    )
    args = parser.parse_args(argv)
    counts = dict(zip(STRATA, (int(n) for n in args.per_stratum.split(",")), strict=True))
    sample = draw(args.data_dir, args.salt, counts, tuple(args.labelled.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    shuffled = sorted(sample, key=lambda d: _sha(args.shuffle + str(d["link"])))
    with (args.out / "sample.jsonl").open("w", encoding="utf-8") as fh:
        for n, doc in enumerate(shuffled):
            record = {k: doc[k] for k in ("link", "stratum", "title", "description")}
            fh.write(json.dumps({"n": n, **record}, ensure_ascii=False) + "\n")
    for start in range(0, len(shuffled), args.chunk):
        lines = []
        for n in range(start, min(start + args.chunk, len(shuffled))):
            doc = shuffled[n]
            desc = re.sub(r"\s+", " ", str(doc["description"] or ""))[:400]
            lines.append(f"[{n}] {doc['title']}\n    {desc}\n")
        (args.out / f"chunk_{start // args.chunk:02d}.txt").write_text("\n".join(lines), "utf-8")
    by_stratum = {s: sum(1 for d in sample if d["stratum"] == s) for s in STRATA}
    print(f"sampled {len(sample)} items: {by_stratum}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
