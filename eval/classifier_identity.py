"""Check that a change to the classifier's code left every output byte-identical.

Run from the repository root::

    python -m eval.classifier_identity                  # against the committed digests
    python -m eval.classifier_identity --against HEAD~3 # item by item against a revision
    python -m eval.classifier_identity --update         # rewrite the digests (intended change)

Why: speed work on the rule layer (``worker/classify/matching.py``, ``rules.py``) must not
move a single classification, score, topic or evidence string, or the stored articles no
longer match ``CLASSIFIER_VERSION`` and the published figures no longer describe the code.
Equality of the P/R figures would not show that; equality of every output does.

What is compared, per input: the ``hybrid`` verdict (``classify`` with the item's
language: score, is_ukraine_security, topics, evidence, version), the rule layer's verdict
(``classify_rules_only``) and the rule analysis itself (every hit's offset, term and text,
every point and factor; floats by ``repr``), as canonical JSON. Inputs: every labelled
item of ``eval.classifier_eval.load_items`` (feed items of every split, the 2014 and fundus
full articles, Ukrainian and Russian items) plus four 20,000-character bodies (the speed
bench's, two of 2014 full articles, one of Ukrainian/Russian posts).

``eval/classifier_identity.json`` (``DIGESTS``) holds one digest over everything, one per
source and split, and per-input digests of a cheap fixed sample (``sample_inputs``) that
``tests/unit/test_classify_identity.py`` recomputes in seconds. ``--against REV`` loads
``worker/classify`` and its weights as they were at a git revision, beside the working
tree's, and lists the inputs that differ (``load_baseline``; the speed bench uses it too).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from io import BytesIO
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # allow `python eval/classifier_identity.py`
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import (  # noqa: E402
    DEFAULT_DATA_DIR,
    LONG_BODY_CHARS,
    Item,
    _multilingual_items,
    _read_labels,
    load_items,
    long_body,
)

DIGESTS = REPO_ROOT / "eval" / "classifier_identity.json"
SAMPLE_EVERY = 10
"""Every 10th feed and Ukrainian/Russian item is in the unit test's sample (a few seconds;
see :func:`sample_inputs`); the script checks all of them."""


@dataclass(frozen=True)
class Input:
    """One text to classify, and the key its digest is stored under."""

    key: str
    group: str
    title: str
    body: str
    language: str | None


def _bias_2014(data_dir: Path) -> Iterator[Item]:
    """The labelled 2014 full articles as ``load_items`` yields them, read alone (cheap)."""
    labels = _read_labels("ukraine_news_bias_2014")
    with (data_dir / "ukraine_news_bias_2014" / "articles.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["id"] in labels:
                label, split = labels[doc["id"]]
                text: str = doc["text"]
                first, _, rest = text.partition("\n")
                body = rest if first.strip() == doc["title"].strip() else text
                yield Item(
                    "ukraine_news_bias_2014", doc["id"], split, label, doc["title"], body, "en"
                )


def _long_bodies(feed: list[Item], full: list[Item], cyrillic: list[Item]) -> list[Input]:
    """20,000-character bodies: the speed bench's worst case, full articles, Cyrillic posts."""

    def joined(pool: list[Item]) -> str:
        return " ".join(i.body for i in pool)[:LONG_BODY_CHARS]

    return [
        Input("long:bench", "long", "Long article", long_body(feed), "en"),
        Input("long:full", "long", full[0].title, joined(full[1:]), "en"),
        Input("long:full-undeclared", "long", full[-1].title, joined(full[::-1]), None),
        Input("long:cyrillic", "long", cyrillic[0].title, joined(cyrillic[1:]), None),
    ]


def _input(item: Item) -> Input:
    return Input(
        f"{item.source}:{item.id}",
        f"{item.source}/{item.split}",
        item.title,
        item.body,
        item.language,
    )


def inputs(data_dir: Path = DEFAULT_DATA_DIR) -> list[Input]:
    """Every input the script classifies, in a fixed order."""
    items = list(load_items(data_dir))
    return [_input(i) for i in items] + _long_bodies(
        items,  # long_body reads the first 200, as the speed bench does
        [i for i in items if i.source == "ukraine_news_bias_2014"],
        [i for i in items if i.source == "multilingual"],
    )


def sample_inputs(data_dir: Path = DEFAULT_DATA_DIR) -> list[Input]:
    """The unit test's fixed sample, read without the costly sources (the feed dump, every
    fundus page's language detection): every ``SAMPLE_EVERY``-th labelled feed item, AG
    News item and Ukrainian/Russian item, every third 2014 and fundus full article, and the
    same long bodies as :func:`inputs`."""
    from worker.extract import detect_language

    feed = list(islice(load_items(data_dir), len(_read_labels("rss_link_db_2023"))))
    assert {i.source for i in feed} == {"rss_link_db_2023"}  # load_items reads them first
    full = list(_bias_2014(data_dir))
    cyrillic = list(_multilingual_items(data_dir))
    with (data_dir / "fundus" / "fundus_ground_truth.json").open(encoding="utf-8") as fh:
        pages = json.load(fh)
    fundus = []
    for key, (label, split) in sorted(_read_labels("fundus").items())[::3]:
        title, body = pages[key].get("title") or "", pages[key].get("articleBody") or ""
        language = detect_language(f"{title}. {body}") or "und"
        fundus.append(Item("fundus", key, split, label, title, body, language))
    picked = feed[::SAMPLE_EVERY] + full[::3] + fundus + cyrillic[::SAMPLE_EVERY]
    return [_input(i) for i in picked] + _long_bodies(feed, full, cyrillic)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # exact: a last-bit change in a float is a change
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def outputs(classify_module: ModuleType, item: Input) -> dict[str, Any]:
    """Everything the classifier in ``classify_module`` says about one input."""
    hybrid = classify_module.classify(title=item.title, body=item.body, language=item.language)
    rules = classify_module.classify_rules_only(title=item.title, body=item.body)
    analysis = classify_module.analyse(item.title, item.body)
    return {
        "hybrid": _jsonable(asdict(hybrid)),
        "rules": _jsonable(asdict(rules)),
        "analysis": _jsonable(
            {
                name: value
                for name, value in vars(analysis).items()
                if name not in ("title", "body")  # inputs, not outputs; the hits locate in them
            }
            | {"text": hashlib.sha256((analysis.title + "\0" + analysis.body).encode()).hexdigest()}
        ),
    }


def _hits(value: Any) -> Any:
    """Hit objects as ``[start, term, text]``: they are compared by value, not by repr."""
    if hasattr(value, "start") and hasattr(value, "term") and hasattr(value, "text"):
        return [value.start, value.term, value.text]
    if isinstance(value, dict):
        return {k: _hits(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hits(v) for v in value]
    return value


def digest(classify_module: ModuleType, item: Input) -> str:
    """A short digest of :func:`outputs` (canonical JSON, sha256)."""
    canonical = json.dumps(_hits(outputs(classify_module, item)), sort_keys=True, default=_hits)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _combined(digests: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def compute(
    classify_module: ModuleType,
    items: list[Input],
    sample: list[Input],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The digest file's content for ``items``."""
    per_item: list[tuple[Input, str]] = []
    for n, item in enumerate(items):
        per_item.append((item, digest(classify_module, item)))
        if progress and n % 1000 == 0:
            progress(n)
    groups: dict[str, list[str]] = {}
    for item, d in per_item:
        groups.setdefault(item.group, []).append(d)
    return {
        "items": len(per_item),
        "digest": _combined(d for _, d in per_item),
        "groups": {g: _combined(ds) for g, ds in sorted(groups.items())},
        "sample": {item.key: digest(classify_module, item) for item in sample},
    }


def load_baseline(revision: str) -> ModuleType:
    """``worker.classify`` as it was at a git ``revision``, importable beside today's.

    The package and the weights it loads (``worker/data``) are extracted from
    ``git archive`` into a temporary package named after the commit; ``classify`` imports
    only relative modules and finds its weights next to itself, so both versions run in
    one process (the speed bench times them interleaved, this script compares them).
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    name = f"_baseline_{commit[:12]}"
    if name + ".classify" in sys.modules:
        return sys.modules[name + ".classify"]
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "worker/classify", "worker/data"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    root = Path(tempfile.mkdtemp(prefix="classify-baseline-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    (root / "worker" / "__init__.py").write_text("")
    (root / "worker").rename(root / name)
    sys.path.insert(0, str(root))
    return importlib.import_module(name + ".classify")


def _differences(
    current: ModuleType, baseline: ModuleType, items: list[Input]
) -> Iterator[tuple[Input, str]]:
    for item in items:
        new, old = outputs(current, item), outputs(baseline, item)
        for part in ("hybrid", "rules", "analysis"):
            if json.dumps(_hits(new[part]), sort_keys=True) != json.dumps(
                _hits(old[part]), sort_keys=True
            ):
                yield item, part
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--against", metavar="REV", help="compare item by item with a revision")
    mode.add_argument("--update", action="store_true", help=f"rewrite {DIGESTS.name}")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2

    import worker.classify as current

    items = inputs(args.data_dir)
    if args.against:
        baseline = load_baseline(args.against)
        differing = list(_differences(current, baseline, items))
        for item, part in differing[:20]:
            print(f"differs ({part}): {item.key}  {item.title[:70]!r}")
        print(f"{len(items)} inputs, {len(differing)} differ from {args.against}")
        return 1 if differing else 0

    def progress(n: int) -> None:
        print(f"  {n}/{len(items)}", file=sys.stderr)

    found = compute(current, items, sample_inputs(args.data_dir), progress)
    if args.update:
        DIGESTS.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {DIGESTS.relative_to(REPO_ROOT)}: {found['items']} inputs")
        return 0
    expected = json.loads(DIGESTS.read_text(encoding="utf-8"))
    bad = [g for g, d in found["groups"].items() if expected["groups"].get(g) != d]
    bad += [f"sample {k}" for k, d in found["sample"].items() if expected["sample"].get(k) != d]
    bad += [g for g in expected["groups"] if g not in found["groups"]]
    print(f"{found['items']} inputs (expected {expected['items']}), digest {found['digest']}")
    for group in bad:
        print(f"  differs: {group}")
    if bad or found["digest"] != expected["digest"]:
        print("NOT identical to the committed digests", file=sys.stderr)
        return 1
    print("identical to the committed digests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
