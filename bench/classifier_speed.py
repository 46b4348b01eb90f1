"""Classifier latency per article: rule layer (baseline) vs hybrid vs neighbours, one run.

    .venv/bin/python bench/classifier_speed.py            # ~1 min on 2 cores
    .venv/bin/python bench/classifier_speed.py --rounds 5
    .venv/bin/python bench/classifier_speed.py --baseline 40dfe39 --no-neighbours

Why a separate script: the issue's budget is "well under 50 ms per article", and the
figures printed by ``eval.classifier_eval`` are a by-product of an accuracy run, so they
move with whatever else the machine does. Here the three methods are timed on the same
inputs and *interleaved* round by round (rules, hybrid, neighbours, rules, ...), so a
slower or busier host moves every column alike; the ratios to the rule layer are the
figures to compare across machines, the milliseconds are this machine's.

Inputs: 300 feed snippets (``test2``, the common case), 300 Ukrainian/Russian items
(``ml_dev``: the Cyrillic learned stage), every fundus full article (the
extracted-article case) and one 20,000-character body (the worst case the worker sees
after extraction caps). Wall-clock per call, one process, the stage loaded beforehand
(as a warmed-up worker has it). ``neighbours`` is skipped when its extra is not installed
(or with ``--no-neighbours``).

``--baseline REV`` adds ``rules@REV`` and ``hybrid@REV``: the classifier package as it was
at a git revision (``eval.classifier_identity.load_baseline``), timed in the same rounds,
so a speed change is measured as a ratio on the same inputs in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import Item, load_items, long_body  # noqa: E402
from eval.classifier_identity import load_baseline  # noqa: E402
from worker.classify import classify, classify_rules_only  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _methods(
    baseline: str | None, with_neighbours: bool
) -> dict[str, Callable[[str, str, str], object]]:
    methods: dict[str, Callable[[str, str, str], object]] = {
        "rules": lambda t, b, lang: classify_rules_only(title=t, body=b),
        "hybrid": lambda t, b, lang: classify(title=t, body=b, language=lang),
    }
    if baseline:
        old = load_baseline(baseline)
        methods[f"rules@{baseline}"] = lambda t, b, lang: old.classify_rules_only(title=t, body=b)
        methods[f"hybrid@{baseline}"] = lambda t, b, lang: old.classify(
            title=t, body=b, language=lang
        )
    if not with_neighbours:
        return methods
    try:
        from worker.classify import neighbours

        neighbours.stage()  # load torch + model + reference before timing
    except ImportError as exc:  # numpy, the first import of the extra, is missing
        print(f"neighbours skipped: {exc}", file=sys.stderr)
    except neighbours.NeighboursUnavailableError as exc:  # torch or the model is missing
        print(f"neighbours skipped: {exc}", file=sys.stderr)
    else:
        methods["neighbours"] = lambda t, b, lang: classify(
            title=t, body=b, language=lang, method="neighbours"
        )
    return methods


def _workloads(items: list[Item]) -> dict[str, list[tuple[str, str, str]]]:
    snippets = [i for i in items if i.split == "test2"][:300]
    full = [i for i in items if i.source == "fundus"]
    cyrillic = [i for i in items if i.split == "ml_dev"][:300]
    return {
        "feed snippet (300 test2 items)": [(i.title, i.body, "en") for i in snippets],
        "Ukrainian/Russian item (300 ml_dev)": [(i.title, i.body, i.language) for i in cyrillic],
        f"full article ({len(full)} fundus pages)": [(i.title, i.body, i.language) for i in full],
        "20,000-character body (x20)": [("Long article", long_body(items), "en")] * 20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per method")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time the classifier as it was at a git revision"
    )
    parser.add_argument("--no-neighbours", action="store_true", help="skip the neighbour method")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2

    items = list(load_items(args.data_dir))
    methods = _methods(args.baseline, not args.no_neighbours)
    for name, workload in _workloads(items).items():
        samples: dict[str, list[float]] = {m: [] for m in methods}
        for fn in methods.values():  # warm-up: regex caches, model weights in cache
            fn(*workload[0])
        for _ in range(args.rounds):
            for method, fn in methods.items():
                for title, body, language in workload:
                    start = time.perf_counter()
                    fn(title, body, language)
                    samples[method].append((time.perf_counter() - start) * 1000.0)
        base = statistics.mean(samples["rules"])
        print(f"\n{name}")
        print(f"  {'method':<18} {'mean ms':>8} {'median':>8} {'p95':>8} {'max':>8} {'x rules':>8}")
        for method, values in samples.items():
            values.sort()
            p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
            mean = statistics.mean(values)
            print(
                f"  {method:<18} {mean:8.2f} {statistics.median(values):8.2f} {p95:8.2f} "
                f"{values[-1]:8.2f} {mean / base:8.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
