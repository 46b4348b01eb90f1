"""Per term table: one regex scan vs the anchored search, on long bodies and on feed items.

    .venv/bin/python -m bench.rule_tables            # ~20 s
    .venv/bin/python -m bench.rule_tables --repeat 50

Why: ``worker.classify.matching`` matches a table by its anchors (``str.find`` per literal
beginning, then the regex only there) instead of a regex pass over the whole text when the
table has at most ``MAX_ANCHORS`` anchors. This prints what that constant was chosen from:
each table's time both ways on the speed bench's 20,000-character body and on 300 feed
items (title + description), as CPU time of the fastest of ``--repeat`` runs (a busy host
moves the minimum least). Both ways return the same hits (the script checks it). It also
times the rest of the rule layer's text passes on the 20k body (normalising, the sentence
splitter against its plain form).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.classifier_eval import load_items, long_body  # noqa: E402
from worker.classify import lexicon as lex  # noqa: E402
from worker.classify.matching import MAX_ANCHORS, Matcher  # noqa: E402
from worker.classify.rules import _BOILERPLATE, _SENTENCE_END, _normalise  # noqa: E402
from worker.classify.topics import TOPIC_TERMS  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TABLES = {
    "ukraine": lex.UKRAINE,
    "security": lex.SECURITY,
    "other_conflict": lex.OTHER_CONFLICT,
    "off_topic": lex.OFF_TOPIC,
    **TOPIC_TERMS,
}


def _fastest(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2

    items = list(load_items(args.data_dir))
    raw = long_body(items)
    body = _BOILERPLATE.sub(" ", _normalise(raw))
    feed = [_normalise(i.title + " " + i.body) for i in items if i.split == "test2"][:300]
    print(f"MAX_ANCHORS={MAX_ANCHORS}; CPU ms, fastest of {args.repeat}")
    print(
        f"{'table':<20} {'anchors':>7} {'20k scan':>9} {'anchored':>9} "
        f"{'feed scan':>10} {'anchored':>9}  used"
    )
    used_ms = {"scan": 0.0, "anchored": 0.0}
    for name, terms in TABLES.items():
        matcher = Matcher(terms, max_anchors=10_000)
        n = len(matcher.anchors) if matcher.anchors is not None else 0
        cells = [
            _fastest(lambda m=matcher: m.scan(body), args.repeat),
            _fastest(lambda m=matcher: [m.scan(t) for t in feed], args.repeat),
        ]
        if n:
            assert matcher.find_anchored(body) == matcher.scan(body)
            cells.insert(1, _fastest(lambda m=matcher: m.find_anchored(body), args.repeat))
            cells.append(
                _fastest(lambda m=matcher: [m.find_anchored(t) for t in feed], args.repeat)
            )
        if not n:  # no anchors: only the scan is timed
            cells = [cells[0], float("nan"), cells[1], float("nan")]
        shown = [f"{c:{w}.3f}" for c, w in zip(cells, (9, 9, 10, 9), strict=True)]
        used = "anchored" if 0 < n <= MAX_ANCHORS else "scan"
        used_ms[used] += cells[1] if used == "anchored" else cells[0]
        print(f"{name:<20} {n or '-':>7} {' '.join(shown)}  {used}")
    print(
        f"20k body, as used: scanned tables {used_ms['scan']:.2f} ms, "
        f"anchored tables {used_ms['anchored']:.2f} ms"
    )
    plain = re.compile(r"(?<=[.!?])\s+|\n+")  # _SENTENCE_END's plain form
    print(
        f"20k body: normalise + boilerplate "
        f"{_fastest(lambda: _BOILERPLATE.sub(' ', _normalise(raw)), args.repeat):.2f} ms; "
        f"sentence splitter {_fastest(lambda: list(plain.finditer(body)), args.repeat):.2f} ms "
        f"plain, {_fastest(lambda: list(_SENTENCE_END.finditer(body)), args.repeat):.2f} ms now"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
