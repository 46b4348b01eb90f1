"""Client CPU of one statement that binds the band keys: as a list, or as one array literal.

Why: every article stored on PostgreSQL sends its band keys twice (~75 query keys to
the lookup, ~40 index keys to the insert). Bound as ``ARRAY(String)``, psycopg's list
dumper builds the array's text in Python, item by item; bound as
:class:`worker.store.sql.TextArray`, the store joins them once into the literal and the
server casts it (``array_in`` parses the same text either way). This times the two
bindings of the same ``INSERT ... SELECT unnest(:keys)`` in alternating blocks, on one
connection to a throwaway cluster, with the seed article's real keys, so the store's
change can be judged apart from the rest of a run whose noise is larger than it
(``bench/profile_store.py`` could not resolve it).

    python -m bench.array_bind                    # 2,000 statements per binding, 3 rounds
    python -m bench.array_bind --statements 50 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SEED = REPO_ROOT / "seeds" / "seed-article.txt"
WARM_UP = 50


def seed_keys() -> list[str]:
    """The lookup's keys for the seed article, as the store sends them."""
    from worker import dedup
    from worker.models import utcnow

    fp = dedup.fingerprint(
        title="Macron and Trump discuss security guarantees for Ukraine",
        body=SEED.read_text(),
        published_at=utcnow(),
    )
    return sorted(set(dedup.query_keys(fp)))


def run(statements: int, rounds: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from tests.support import services
    from worker.store.sql import TextArray

    keys = seed_keys()
    bindings = {"list": postgresql.ARRAY(sa.String), "literal": TextArray()}
    timings: dict[str, list[float]] = {name: [] for name in bindings}
    server = services.start_postgres()
    try:
        engine = sa.create_engine(server.url())
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE bands (band_key VARCHAR, article_id INTEGER)")
        for _ in range(rounds):
            for name, type_ in bindings.items():
                statement = sa.text("INSERT INTO bands SELECT unnest(:keys), :id").bindparams(
                    sa.bindparam("keys", type_=type_), sa.bindparam("id", type_=sa.Integer)
                )
                with engine.connect() as conn:
                    for i in range(WARM_UP):  # statement cache, server-side prepare
                        conn.execute(statement, {"keys": keys, "id": i})
                    started = time.process_time()
                    for i in range(statements):
                        conn.execute(statement, {"keys": keys, "id": i})
                    timings[name].append((time.process_time() - started) / statements * 1000)
                    conn.rollback()
        with engine.begin() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM bands").scalar_one()
        engine.dispose()
    finally:
        server.stop()
    return {
        "keys": len(keys),
        "statements_per_round": statements,
        "rounds": rounds,
        "rows_left": stored,  # each round rolled back: 0
        "client_cpu_ms_per_statement": {
            name: {"median": round(statistics.median(v), 4), "runs": [round(x, 4) for x in v]}
            for name, v in timings.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.statements, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
