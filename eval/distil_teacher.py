"""Score unlabelled 2023 feed items with the neighbour method (the *teacher*) for distillation.

Run from the repository root (needs the ``neighbours`` extra, i.e. torch, at dev time only)::

    nice -n 10 python -m eval.distil_teacher [--shard 0/2] [--limit N]

Why: the optional neighbour method (MiniLM + nearest labelled dev items) finds ~5 points
more recall than the default hybrid at equal precision, but needs torch at run time.
``eval/train_distil.py`` trains a torch-free student on the real dev labels plus this
teacher's *soft* scores on unlabelled items of the same dump. This script pays the
expensive part once (one int8 MiniLM forward pass per item, ~25 ms; batching changes the
int8 vectors, see docs/classifier.md) and caches it outside git (``eval/cache/``).

Candidates are the titled items of ``world_news_entries_2023.jsonl.gz`` that are in no label
file (dev, test, test2, test3: the 800-item file and every ``eval/labels/rss_link_db_2023_*``
file) and whose casefolded title or description equals no labelled item's - the exclusion
of ``eval/sample_extra.py`` - deduplicated by link and by text. They are scored in a fixed
priority order, so a run stopped early has the most useful items: every item the feed's
keyword flags put in a Ukraine or security stratum, then ``other`` items the shipped hybrid
gives at least ``PRIORITY_SCORE``, then the remaining ``other`` items in SHA-1 order.

Per item the cache keeps the link, stratum, priority, title, description, the int8 MiniLM
vector (as float16) and the shipped teacher's probability (``neighbours-2026.12.6``, whose
reference set is the 4,525 dev items it was trained on). The trainer re-derives a teacher
per cross-validation fold from the vectors, so held-out dev labels never reach its targets.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import DEFAULT_DATA_DIR, LABELS_DIR, feed_stratum  # noqa: E402
from eval.sample_extra import text_key  # noqa: E402
from worker.classify import analyse, classify, model_features  # noqa: E402
from worker.classify import neighbours as nb  # noqa: E402
from worker.classify import weights as shipped_weights  # noqa: E402
from worker.classify.learned import linear_verdict  # noqa: E402

CACHE_DIR = REPO_ROOT / "eval" / "cache"
PRIORITY_SCORE = 0.02
"""``other`` items with at least this hybrid score are scored before the rest."""
CHECKPOINT = 500


def label_files() -> list[Path]:
    """Every label file of the 2023 dump (dev extras, test2, test3; second passes too)."""
    return sorted(LABELS_DIR.glob("rss_link_db_2023_*.csv"))


def candidates(data_dir: Path) -> list[dict[str, object]]:
    """Unlabelled, de-duplicated dump items in scoring-priority order (deterministic)."""
    banned_links: set[str] = set()
    banned_text: set[str] = set()
    with (data_dir / "rss_link_db_2023" / "to_label_stratified_800.csv").open(
        newline="", encoding="utf-8"
    ) as fh:
        for row in csv.DictReader(fh):
            banned_links.add(row["link"])
            banned_text.update((text_key(row["title"]), text_key(row["description"])))
    labelled: set[str] = set()
    for path in label_files():
        with path.open(newline="", encoding="utf-8") as fh:
            labelled |= {row["id"] for row in csv.DictReader(fh)}
    docs: list[dict[str, object]] = []
    seen: set[str] = set()
    path = data_dir / "rss_link_db_2023" / "world_news_entries_2023.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            link = doc["link"]
            if link in labelled:
                banned_links.add(link)
                banned_text.update((text_key(doc["title"]), text_key(doc["description"])))
                continue
            if not doc["title"] or link in seen:
                continue
            seen.add(link)
            docs.append(doc)
    banned_links |= labelled
    banned_text.discard("")
    out: list[dict[str, object]] = []
    taken_text = set(banned_text)
    for doc in docs:
        if doc["link"] in banned_links:
            continue
        texts = {text_key(doc["title"]), text_key(doc["description"])} - {""}
        if texts & taken_text:
            continue  # a re-titled copy of a labelled item, or of a candidate already kept
        taken_text |= texts
        out.append(
            {
                "link": doc["link"],
                "title": doc["title"],
                "description": doc["description"] or "",
                "stratum": feed_stratum(doc),
                "hash": hashlib.sha1(("distil" + str(doc["link"])).encode()).hexdigest(),
            }
        )
    return out


def prioritise(docs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Flagged strata first, then likely-relevant ``other`` items, then the rest."""
    for doc in docs:
        hybrid = classify(title=str(doc["title"]), body=str(doc["description"]), language="en")
        doc["hybrid"] = hybrid.score
        if doc["stratum"] != "other":
            doc["priority"] = 0
        else:
            doc["priority"] = 1 if hybrid.score >= PRIORITY_SCORE else 2
    return sorted(docs, key=lambda d: (int(d["priority"]), str(d["hash"])))  # type: ignore[call-overload]


def save(path: Path, done: list[dict[str, object]], vectors: list[np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        links=np.array([d["link"] for d in done]),
        titles=np.array([d["title"] for d in done]),
        descriptions=np.array([d["description"] for d in done]),
        strata=np.array([d["stratum"] for d in done]),
        priority=np.array([d["priority"] for d in done], dtype=np.int8),
        hybrid=np.array([d["hybrid"] for d in done], dtype=np.float32),
        teacher=np.array([d["teacher"] for d in done], dtype=np.float32),
        vectors=np.array(vectors, dtype=np.float16).reshape(len(vectors), -1),
    )
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--shard", default="0/1", help="I/N: score every N-th item from I")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many (0: all)")
    args = parser.parse_args(argv)
    index, count = (int(x) for x in args.shard.split("/"))
    start = time.time()
    docs = prioritise(candidates(args.data_dir))
    by_priority = {p: sum(1 for d in docs if d["priority"] == p) for p in (0, 1, 2)}
    print(f"{len(docs)} candidates, by priority {by_priority} ({time.time() - start:.0f} s)")
    mine = docs[index::count]
    if args.limit:
        mine = mine[: args.limit]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = CACHE_DIR / f"distil_teacher_{index}of{count}.npz"
    stage = nb.NeighbourStage()
    model = shipped_weights.neighbours_model()
    done: list[dict[str, object]] = []
    vectors: list[np.ndarray] = []
    for n, doc in enumerate(mine, 1):
        a = analyse(str(doc["title"]), str(doc["description"]))
        vector = stage.encoder.embed([nb.embedding_text(a.title, a.body)])[0]
        sims = stage.reference.vectors @ vector
        features = model_features(a) | nb.neighbour_features(
            sims, stage.reference.labels, int(model.params["k"])
        )
        doc["teacher"], _ = linear_verdict(a, features, model)
        done.append(doc)
        vectors.append(vector)
        if n % CHECKPOINT == 0 or n == len(mine):
            save(out, done, vectors)
            rate = (time.time() - start) / n
            print(f"{n}/{len(mine)} scored, {rate * 1000:.0f} ms each overall", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
