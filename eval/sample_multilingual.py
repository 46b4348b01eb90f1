"""Draw the Ukrainian and Russian items to label from ``../shared/data/multilingual_news``.

Run from the repository root (no extras needed)::

    python -m eval.sample_multilingual --out DIR

Why a script: the classifier has never been measured on the languages that matter most for
Ukraine security, and a reader must be able to re-draw exactly the same items. The draw is
fixed in ``eval/labels/MULTILINGUAL_PLAN.md`` (committed before any item was labelled or
scored) and is stratified by what the *publishers* say about an item, never by our rules:

* Ukrainian (447 RSS leads): the outlet's URL section, grouped into ``news`` (national,
  politics, world, war sections and article ids), ``regional`` (city/oblast sections) and
  ``soft`` (sport, culture, money, lifestyle, health, science). 400 go to ``ml_test``, in
  proportion to the groups; the other 47 are ``ml_dev``.
* Russian (5,000 Telegram posts + 20 Lenta/RBC items): the source dataset's own machine
  topic (``orig_category_llm``), grouped into ``political`` (and the agency items),
  ``incidents`` (personal, other, moscow) and ``rest`` (business, science, finances, it,
  gaming, weather, adverts, stuff). 330 / 180 / 90 go to ``ml_test`` and as many again to
  ``ml_dev``, round-robin over channels inside each group so no channel dominates.

Within a group the order is SHA-1 of ``salt + id``. Writes ``DIR/sample.jsonl`` (``n``,
``id``, ``lang``, ``split``, ``stratum``, text) and chunk files for the two blind labelling
passes: ``pass1_NN.txt`` (test and dev items shuffled together, nothing tells them apart)
and ``pass2_NN.txt`` (test items only, another shuffle). A chunk shows only a running
number, the title and the first ``TEXT_CHARS`` characters of the text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import DEFAULT_DATA_DIR  # noqa: E402
from eval.sample_extra import _sha  # noqa: E402

SALT = "multilingual-20261203"
TEXT_CHARS = 700
UK_TEST = 400
RU_PER_STRATUM = {"political": 330, "incidents": 180, "rest": 90}
RU_STRATA = tuple(RU_PER_STRATUM)
RU_DEV2_PER_STRATUM = {"political": 550, "incidents": 300, "rest": 50}
"""A second Russian dev draw (``ml_dev2``, added 2026-12-03 after the first Cyrillic stage
cross-validated at recall ~0.70 on 600 Russian dev items): the next items of each stratum's
round-robin order, so it never overlaps ``ml_test`` or ``ml_dev``."""
UK_STRATA = ("news", "regional", "soft")
_UK_SOFT = frozenset(
    (
        "sport",
        "culture",
        "glamur",
        "groshi",
        "tsikavinki",
        "zdorovya",
        "astrologiya",
        "nauka_it",
        "tourism",
    )
)
_UK_REGIONAL = frozenset(
    (
        "chernihiv",
        "kyiv",
        "cherkasy",
        "lviv",
        "ivano-frankivsk",
        "ternopil",
        "vinnytsia",
        "dnipro",
        "rivne",
        "uzhhorod",
        "kharkiv",
        "zaporizhzhia",
        "sumy",
        "khmelnytskiy",
        "poltava",
        "odesa",
        "zhytomyr",
        "mykolaiv",
        "kropyvnytskiy",
        "lutsk",
        "kherson",
        "chernivtsi",
    )
)
_RU_INCIDENTS = frozenset({"personal", "other", "moscow"})


def uk_stratum(doc: dict[str, object]) -> str:
    """The publisher's section, grouped (``news`` for national/world/war and bare ids)."""
    section = str(doc.get("url_section") or "")
    if section in _UK_SOFT:
        return "soft"
    if section in _UK_REGIONAL:
        return "regional"
    return "news"


def ru_stratum(doc: dict[str, object]) -> str:
    """The source dataset's machine topic, grouped; agency items (no topic) are political."""
    category = doc.get("orig_category_llm")
    if category is None or category == "political":
        return "political"
    return "incidents" if category in _RU_INCIDENTS else "rest"


def _read(path: Path) -> list[dict[str, object]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _round_robin(docs: Iterable[dict[str, object]], salt: str) -> list[dict[str, object]]:
    """Docs ordered channel by channel in turn, each channel's docs by hash."""
    by_source: dict[str, list[dict[str, object]]] = defaultdict(list)
    for doc in sorted(docs, key=lambda d: _sha(salt + str(d["id"]))):
        by_source[str(doc["source"])].append(doc)
    order: list[dict[str, object]] = []
    queues = [by_source[s] for s in sorted(by_source)]
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def draw(data_dir: Path, salt: str = SALT) -> list[dict[str, object]]:
    """The deterministic sample: every item with ``split`` and ``stratum`` set."""
    base = data_dir / "multilingual_news"
    sample: list[dict[str, object]] = []

    uk = _read(base / "news_uk.jsonl.gz")
    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for doc in uk:
        groups[uk_stratum(doc)].append(doc)
    quotas = {s: round(UK_TEST * len(groups[s]) / len(uk)) for s in UK_STRATA}
    quotas["news"] += UK_TEST - sum(quotas.values())  # rounding remainder
    for stratum in UK_STRATA:
        ordered = sorted(groups[stratum], key=lambda d: _sha(salt + str(d["id"])))
        for i, doc in enumerate(ordered):
            split = "ml_test" if i < quotas[stratum] else "ml_dev"
            sample.append({**doc, "split": split, "stratum": stratum})

    ru = _read(base / "news_ru.jsonl.gz")
    ru_groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for doc in ru:
        ru_groups[ru_stratum(doc)].append(doc)
    for stratum in RU_STRATA:
        ordered = _round_robin(ru_groups[stratum], salt)
        n = RU_PER_STRATUM[stratum]
        for doc in ordered[:n]:
            sample.append({**doc, "split": "ml_test", "stratum": stratum})
        for doc in ordered[n : 2 * n]:
            sample.append({**doc, "split": "ml_dev", "stratum": stratum})
        for doc in ordered[2 * n : 2 * n + RU_DEV2_PER_STRATUM[stratum]]:
            sample.append({**doc, "split": "ml_dev2", "stratum": stratum})
    return sample


def shown_text(doc: dict[str, object]) -> str:
    """What a labeller sees: title (if any) and the start of the text, one line each."""
    text = re.sub(r"\s+", " ", str(doc.get("text") or "")).strip()[:TEXT_CHARS]
    title = str(doc.get("title") or "").strip()
    return f"{title}\n    {text}" if title else text


def _write_chunks(out: Path, prefix: str, docs: list[dict[str, object]], size: int) -> None:
    for start in range(0, len(docs), size):
        lines = [
            f"[{doc['n_' + prefix]}] {shown_text(doc)}\n" for doc in docs[start : start + size]
        ]
        (out / f"{prefix}_{start // size:02d}.txt").write_text("\n".join(lines), "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk", type=int, default=200)
    args = parser.parse_args(argv)
    sample = draw(args.data_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    dev2 = sorted(
        (d for d in sample if d["split"] == "ml_dev2"),
        key=lambda d: _sha("ml-dev2" + str(d["id"])),
    )
    for n, doc in enumerate(dev2):
        doc["n_dev2"] = n
    sample = [d for d in sample if d["split"] != "ml_dev2"]
    pass1 = sorted(sample, key=lambda d: _sha("ml-pass1" + str(d["id"])))
    for n, doc in enumerate(pass1):
        doc["n_pass1"] = n
    pass2 = sorted(
        (d for d in sample if d["split"] == "ml_test"),
        key=lambda d: _sha("ml-pass2" + str(d["id"])),
    )
    for n, doc in enumerate(pass2):
        doc["n_pass2"] = n
    with (args.out / "sample.jsonl").open("w", encoding="utf-8") as fh:
        for doc in pass1 + dev2:
            keys = (
                "n_pass1",
                "n_pass2",
                "n_dev2",
                "id",
                "lang",
                "split",
                "stratum",
                "source",
                "title",
            )
            record = {k: doc.get(k) for k in keys}
            fh.write(json.dumps({**record, "text": doc["text"]}, ensure_ascii=False) + "\n")
    _write_chunks(args.out, "pass1", pass1, args.chunk)
    _write_chunks(args.out, "pass2", pass2, args.chunk)
    _write_chunks(args.out, "dev2", dev2, args.chunk)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for doc in sample + dev2:
        counts[(str(doc["lang"]), str(doc["split"]), str(doc["stratum"]))] += 1
    for key in sorted(counts):
        print(*key, counts[key])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
