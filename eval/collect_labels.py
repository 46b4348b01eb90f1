"""Join labelling-session outputs (``n,label`` CSVs) with the drawn sample into label files.

Run from the repository root::

    python -m eval.collect_labels --sample DIR/sample.jsonl --number n_pass1 \
        --labels 'OUT/ml_pass1_*.csv' --out eval/labels/multilingual_first_pass.csv \
        --columns id,label,split,stratum,lang

Why: a labeller sees only running numbers (``[n]``), never ids, strata or splits, so the
numbers must be mapped back to the sample's ids. Every drawn item must get exactly one
label; a missing or repeated number is an error, never a silent gap.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
from pathlib import Path


def collect(sample: Path, number: str, label_files: list[str]) -> list[dict[str, object]]:
    """Sample rows (those numbered by ``number``) with the ``label`` their session gave."""
    rows = [json.loads(line) for line in sample.read_text("utf-8").splitlines()]
    by_n = {int(r[number]): r for r in rows if r.get(number) is not None}
    labels: dict[int, int] = {}
    for path in label_files:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                n, label = int(row["n"]), int(row["label"])
                if n in labels:
                    raise ValueError(f"{path}: item {n} labelled twice")
                if n not in by_n:
                    raise ValueError(f"{path}: item {n} is not in the sample")
                if label not in (0, 1):
                    raise ValueError(f"{path}: item {n} has label {label}")
                labels[n] = label
    missing = sorted(set(by_n) - set(labels))
    if missing:
        raise ValueError(f"{len(missing)} items have no label, e.g. {missing[:5]}")
    return [{**by_n[n], "label": labels[n]} for n in sorted(by_n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--number", default="n", help="the sample's running-number field")
    parser.add_argument("--labels", required=True, help="glob of n,label CSV files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--columns", default="id,label")
    parser.add_argument("--rename", default="", help="e.g. link:id")
    args = parser.parse_args(argv)
    files = sorted(glob.glob(args.labels))
    if not files:
        print(f"no files match {args.labels}", file=sys.stderr)
        return 2
    rows = collect(args.sample, args.number, files)
    renames = dict(pair.split(":") for pair in args.rename.split(",") if pair)
    for row in rows:
        for old, new in renames.items():
            row[new] = row[old]
    columns = args.columns.split(",")
    rows.sort(key=lambda r: str(r[columns[0]]))
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{args.out}: {len(rows)} rows, {sum(int(r['label']) for r in rows)} positive")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
