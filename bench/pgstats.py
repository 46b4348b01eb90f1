"""Where PostgreSQL's share of an end-to-end run goes: ``bench/run.py --db postgres --pg-stats``.

The CPU figures of bench/run.py say how much the server and its backends cost per
article, not what for. This module reads, over the end-to-end burst only:

* ``pg_stat_statements`` (the cluster is started with it preloaded, with
  ``track_planning`` and ``track_io_timing``): every statement the deployment ran,
  its calls, execution and planning time, and block I/O; from it, statements,
  ``BEGIN``/``COMMIT`` and pool pings per article, and the top statements by calls
  and by total time;
* ``pg_stat_database``: commits, rollbacks, rows written and block I/O of the
  bench database;
* round trips: the data segments the deployment's processes sent to the server,
  from the kernel's per-socket counters (``ss -ti``, ``data_segs_out``), sampled each
  second so a connection closed before the end still counts up to its last sample.
  A query is one segment unless it is larger than the loopback MSS (32 KB; a long
  article body), and a pipelined ``executemany`` sends its statements in one or a
  few, so this counts what the client waits for, not statements.

The workers connect as their own role (``ingest``), the bench as ``postgres``: the
statistics are filtered to the workers' role, so the bench's progress query (one
``COUNT`` a second) and its samplers are not counted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from typing import Any

WORKER_ROLE = "ingest"

# Server settings for a cluster that collects these statistics.
SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.track_planning": "on",
    "pg_stat_statements.max": "5000",
    "track_io_timing": "on",
}

_DB_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blk_read_time",
    "blk_write_time",
)


def prepare(conninfo: str, database: str) -> None:
    """Create the workers' role and the extension in ``database`` (before the workers start)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (WORKER_ROLE,)
        ).fetchone()
        if exists is None:
            # A superuser like the bench's own: same rights, a separate name to filter on.
            conn.execute(f"CREATE ROLE {WORKER_ROLE} SUPERUSER LOGIN")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def _segments_out(port: int, exclude_pid: int) -> dict[tuple[int, str], int]:
    """``data_segs_out`` of every established client socket to ``port``, by (pid, local address)."""
    out = subprocess.run(
        ["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found: dict[tuple[int, str], int] = {}
    key: tuple[int, str] | None = None
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            pid = re.search(r"pid=(\d+)", line)
            fields = line.split()
            local = fields[2] if len(fields) > 2 else "?"
            key = (int(pid.group(1)), local) if pid else None
            continue
        segs = re.search(r"\bdata_segs_out:(\d+)", line)
        if key is not None and key[0] != exclude_pid and segs:
            found[key] = int(segs.group(1))
        key = None
    return found


class PgStats(threading.Thread):
    """Statistics of the workers' use of PostgreSQL between :meth:`begin` and :meth:`end`."""

    def __init__(self, conninfo: str, database: str, port: int) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.database = database
        self.port = port
        self._first: dict[tuple[int, str], int] = {}
        self._last: dict[tuple[int, str], int] = {}
        self._db0: dict[str, float] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()
        # iproute2's ss reads the kernel's socket counters; without it, no round trips.
        self._ss = shutil.which("ss") is not None

    def _database_counters(self) -> dict[str, float]:
        import psycopg

        columns = ", ".join(_DB_COUNTERS)
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT {columns} FROM pg_stat_database WHERE datname = %s", (self.database,)
            ).fetchone()
        assert row is not None
        return {name: float(value or 0) for name, value in zip(_DB_COUNTERS, row, strict=True)}

    def begin(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
            conn.execute("SELECT pg_stat_reset()")  # this database's counters
        self._db0 = self._database_counters()
        if self._ss:
            with self._lock:
                self._first = _segments_out(self.port, os.getpid())
                self._last = dict(self._first)
            self.start()

    def run(self) -> None:
        while not self._halt.wait(1.0):
            self._sample()

    def _sample(self) -> None:
        now = _segments_out(self.port, os.getpid())
        with self._lock:
            for key, segs in now.items():
                self._first.setdefault(key, 0)  # opened during the run: all of it counts
                self._last[key] = segs

    def end(self, *, articles: int, top: int = 20) -> dict[str, Any]:
        """Stop sampling and return the figures, per ``articles`` (entries done)."""
        self._halt.set()
        if self._ss:
            self.join(timeout=5)
            self._sample()
        with self._lock:
            segments = sum(self._last[k] - self._first.get(k, 0) for k in self._last)
            connections = len(self._last)
        db1 = self._database_counters()
        db = {k: db1[k] - self._db0.get(k, 0.0) for k in _DB_COUNTERS}
        statements = self._statements()
        n = max(articles, 1)
        top_level = [s for s in statements if s["toplevel"]]

        def calls(pattern: str) -> int:
            return sum(s["calls"] for s in top_level if re.fullmatch(pattern, s["query"], re.I))

        total_calls = sum(s["calls"] for s in top_level)
        exec_ms = sum(s["exec_ms"] for s in top_level)
        plan_ms = sum(s["plan_ms"] for s in top_level)

        def row(s: dict[str, Any]) -> dict[str, Any]:
            return {
                "query": s["query"][:200],
                "toplevel": s["toplevel"],
                "calls_per_article": round(s["calls"] / n, 3),
                "ms_per_call": round((s["exec_ms"] + s["plan_ms"]) / max(s["calls"], 1), 4),
                "ms_per_article": round((s["exec_ms"] + s["plan_ms"]) / n, 3),
                "rows_per_call": round(s["rows"] / max(s["calls"], 1), 2),
            }

        return {
            "articles": articles,
            "per_article": {
                "statements": round(total_calls / n, 2),
                "round_trips": round(segments / n, 2) if self._ss else None,
                "begin": round(calls(r"\s*begin\b.*") / n, 2),
                "commits": round(calls(r"\s*commit\s*;?") / n, 2),
                "rollbacks": round(calls(r"\s*rollback\s*;?") / n, 2),
                # pg_stat_statements shows the pool's pre-ping "SELECT 1" normalised
                "pings": round(calls(r"\s*select \$1\s*;?") / n, 2),
                "xact_commit": round(db["xact_commit"] / n, 2),
                "server_ms": round((exec_ms + plan_ms) / n, 3),
                "server_exec_ms": round(exec_ms / n, 3),
                "server_plan_ms": round(plan_ms / n, 3),
                "rows_inserted": round(db["tup_inserted"] / n, 2),
                "rows_updated": round(db["tup_updated"] / n, 2),
                "blocks_read": round(db["blks_read"] / n, 2),
                "blocks_hit": round(db["blks_hit"] / n, 1),
                "block_read_ms": round(db["blk_read_time"] / n, 4),
            },
            "client_connections": connections,
            "database": {k: round(v, 1) for k, v in db.items()},
            "top_by_calls": [row(s) for s in sorted(top_level, key=lambda s: -s["calls"])[:top]],
            "top_by_time": [
                row(s)
                for s in sorted(statements, key=lambda s: -(s["exec_ms"] + s["plan_ms"]))[:top]
            ],
        }

    def _statements(self) -> list[dict[str, Any]]:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT s.query, s.toplevel, s.calls, s.total_exec_time, s.total_plan_time, s.rows"
                " FROM pg_stat_statements s"
                " JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid"
                " WHERE r.rolname = %s AND d.datname = %s",
                (WORKER_ROLE, self.database),
            ).fetchall()
        return [
            {
                "query": " ".join(str(q).split()),
                "toplevel": bool(top),
                "calls": int(c),
                "exec_ms": float(e),
                "plan_ms": float(p),
                "rows": int(r),
            }
            for q, top, c, e, p, r in rows
        ]
