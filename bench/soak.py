"""Chaos soak: steady news under overlapping faults, then invariants over the database.

    .venv/bin/python bench/soak.py                 # 30 minutes of faults (~35 min in all)
    .venv/bin/python bench/soak.py --minutes 2     # the CI version (tests/integration/test_soak.py)
    .venv/bin/python bench/soak.py --seed 1234     # replay a schedule of faults

The deployment is real: redis-server, a PostgreSQL cluster, two ``ingest worker``
processes with their own hostnames and pools, one ``ingest beat`` and ``ingest api``
(for ``/metrics``). The workers reach PostgreSQL through :mod:`bench.chaosproxy`.
:mod:`bench.soakweb` publishes an item every few seconds (fresh, syndicated copies,
repeats, re-titles, hostile pages) while :class:`FaultScheduler`, from a logged seed,
injects at random times: SIGKILL of a pool child, of a whole worker and of beat (each
restarted), a Redis restart, PostgreSQL stopped for a while, latency and connection
resets on the database port, and ``ingest recrawl`` / ``ingest reclassify``.

Then publishing stops, every fault is healed, the feeds are polled once more, and
the run waits for the work to drain. The invariants (:mod:`bench.soakcheck`) are
checked, a report is printed and written to ``bench/results/soak-<time>.json``, and
the exit status is 0 only if every invariant holds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.chaosproxy import ChaosProxy  # noqa: E402
from bench.newsweb import load_pages  # noqa: E402
from bench.run import _children  # noqa: E402
from bench.soakcheck import check_invariants, drained, make_all_feeds_due  # noqa: E402
from bench.soakweb import SoakWeb  # noqa: E402
from tests.integration.helpers import wait_until  # noqa: E402
from tests.support import services  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

FAULT_WEIGHTS = {
    "kill_pool_child": 18,
    "kill_worker": 10,
    "kill_beat": 8,
    "restart_redis": 8,
    "stop_postgres": 9,
    "db_delay": 10,
    "db_reset": 12,
    "recrawl": 9,
    "reclassify": 6,
}


def log(message: str, **fields: Any) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"[soak {stamp}] {message} {extra}".rstrip(), flush=True)


READY_GRACE_S = 2.0
"""How long a worker has been seen ready before the soak kills one of its pool processes
(see ``FaultScheduler.kill_pool_child``)."""


@dataclass
class Deployment:
    """The running parts and how to restart each; the fault scheduler acts on it."""

    env: dict[str, str]
    direct_env: dict[str, str]
    workdir: Path
    redis: services.RedisServer
    pg: services.PostgresServer
    proxy: ChaosProxy
    concurrency: int
    workers: dict[str, services.CeleryProcess] = field(default_factory=dict)
    beat: services.CeleryProcess | None = None
    api: subprocess.Popen[bytes] | None = None
    api_port: int = 0
    pg_down: threading.Lock = field(default_factory=threading.Lock)
    expected_exit: set[int] = field(default_factory=set)
    unexpected_exits: list[str] = field(default_factory=list)

    def start_worker(self, name: str) -> None:
        self.workers[name] = services.start_celery(
            "worker", self.env, workdir=self.workdir, concurrency=self.concurrency,
            extra=["--hostname", f"{name}@soak"],
        )  # fmt: skip

    def start_beat(self) -> None:
        self.beat = services.start_celery("beat", self.env, workdir=self.workdir)

    def start_api(self) -> None:
        self.api_port = services.free_port()
        self.api = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "api", "--port", str(self.api_port)],
            env={**os.environ, **self.direct_env}, cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        services.wait_for_port(self.api_port, timeout=60)

    def supervise(self) -> None:
        """Restart anything that died without being killed by a fault (and count it)."""
        for name, proc in list(self.workers.items()):
            if proc.process.poll() is not None and proc.process.pid not in self.expected_exit:
                self.unexpected_exits.append(
                    f"worker {name} rc={proc.process.returncode}: {_last_error(proc.log())}"
                )
                log("worker exited unexpectedly; restarting", worker=name)
                self.start_worker(name)
        beat = self.beat
        dead = beat is not None and beat.process.poll() is not None
        if beat is not None and dead and beat.process.pid not in self.expected_exit:
            self.unexpected_exits.append(
                f"beat rc={beat.process.returncode}: {_last_error(beat.log())}"
            )
            log("beat exited unexpectedly; restarting")
            self.start_beat()

    def stop(self) -> None:
        for proc in [*self.workers.values(), *([self.beat] if self.beat else [])]:
            proc.stop()
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            self.api.wait(timeout=10)


class FaultScheduler(threading.Thread):
    """Inject faults at random times (exponential gaps, seeded) until the deadline.

    Faults with a duration (PostgreSQL down, a slow link) run on their own threads,
    so faults overlap as they do in production.
    """

    def __init__(
        self, deployment: Deployment, web: SoakWeb, *, seed: int, mean_gap: float,
        until: float, short: bool,
    ) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.d = deployment
        self.web = web
        self.rng = random.Random(seed)
        self.mean_gap = mean_gap
        self.until = until
        self.short = short
        self.injected: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        self.operator_errors: list[str] = []
        self.down: set[str] = set()  # killed, restart pending: not to be killed again
        self._ready_seen: dict[int, float] = {}  # worker pid -> when its "ready" was seen

    def run(self) -> None:
        while True:
            gap = self.rng.expovariate(1.0 / self.mean_gap)
            if time.monotonic() + gap >= self.until:
                return
            time.sleep(gap)
            kind = self.rng.choices(list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values()))[0]
            try:
                detail = getattr(self, kind)()
            except Exception as exc:  # a fault that could not be injected is reported
                detail = f"not injected: {exc!r}"
            if detail is None:
                continue
            self.injected.append({"at": datetime.now(UTC).isoformat(), "kind": kind,
                                  "detail": detail})  # fmt: skip
            log("fault", kind=kind, detail=detail)

    def heal(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)

    def _later(self, seconds: float, action: Any) -> None:
        def run() -> None:
            time.sleep(seconds)
            action()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    # --- the faults ------------------------------------------------------------

    def kill_pool_child(self) -> str | None:
        # Only in a worker ready for a moment: Celery checks once, right after "ready",
        # that no pool process has exited, and exits if one has. That is its start-up
        # check, not a fault a running deployment must survive (docs/reliability.md).
        settled = [name for name in sorted(self.d.workers) if self._settled(name)]
        if not settled:
            return None
        name = self.rng.choice(settled)
        children = _children(self.d.workers[name].process.pid)
        if not children:
            return None
        pid = self.rng.choice(children)
        os.kill(pid, signal.SIGKILL)
        return f"{name} child {pid}"

    def _settled(self, name: str) -> bool:
        """Whether worker ``name`` is up and has been ready for :data:`READY_GRACE_S`."""
        if name in self.down:
            return False
        proc = self.d.workers[name]
        if "ready" not in proc.log():
            return False
        seen = self._ready_seen.setdefault(proc.process.pid, time.monotonic())
        return time.monotonic() - seen >= READY_GRACE_S

    def kill_worker(self) -> str | None:
        up = sorted(set(self.d.workers) - self.down)
        if not up:
            return None
        name = self.rng.choice(up)
        proc = self.d.workers[name]
        self.d.expected_exit.add(proc.process.pid)
        proc.kill()
        pause = self.rng.uniform(1, 5)
        self._restart_later(name, pause, lambda: self.d.start_worker(name))
        return f"{name}, back after {pause:.1f}s"

    def kill_beat(self) -> str | None:
        if self.d.beat is None or "beat" in self.down:
            return None  # already down: a second restart would make two beats
        self.d.expected_exit.add(self.d.beat.process.pid)
        self.d.beat.kill()
        pause = self.rng.uniform(1, 5)
        self._restart_later("beat", pause, self.d.start_beat)
        return f"back after {pause:.1f}s"

    def _restart_later(self, name: str, pause: float, start: Any) -> None:
        self.down.add(name)

        def restart() -> None:
            start()
            self.down.discard(name)

        self._later(pause, restart)

    def restart_redis(self) -> str:
        self.d.redis.restart()
        return "restarted (no persistence: queued messages lost)"

    def stop_postgres(self) -> str | None:
        if not self.d.pg_down.acquire(blocking=False):
            return None
        down = self.rng.uniform(5, 10 if self.short else 20)
        self.d.pg.stop(remove=False)

        def back() -> None:
            try:
                self.d.pg.start()
            finally:
                self.d.pg_down.release()

        self._later(down, back)
        return f"down for {down:.1f}s"

    def db_delay(self) -> str:
        per_chunk = self.rng.uniform(0.02, 0.3)
        seconds = self.rng.uniform(5, 15 if self.short else 30)
        self.d.proxy.delay(per_chunk, for_seconds=seconds)
        return f"{per_chunk * 1000:.0f} ms per chunk for {seconds:.0f}s"

    def db_reset(self) -> str:
        refuse = self.rng.uniform(0.5, 3)
        cut = self.d.proxy.reset(refuse_seconds=refuse)
        return f"{cut} connections reset, new ones refused for {refuse:.1f}s"

    def recrawl(self) -> str:
        feed = self.rng.choice(self.web.feed_names)
        force = self.rng.random() < 0.5
        args = ["recrawl", "--feed", feed, "--no-wait"] + (["--force"] if force else [])
        self._operator(args)
        return f"{feed}{' --force' if force else ''}"

    def reclassify(self) -> str:
        self._operator(["reclassify", "--all", "--no-wait"])
        return "--all"

    def _operator(self, args: list[str]) -> None:
        """An operator's command, run as the operator would, retried while it fails."""

        def run() -> None:
            for attempt in range(6):
                done = subprocess.run(
                    [sys.executable, "-m", "worker.cli", *args], env={**os.environ, **self.d.env},
                    cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                if done.returncode == 0:
                    return
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
                log("operator command failed; retrying", args=" ".join(args), rc=done.returncode,
                    error=last[0][:160])  # fmt: skip
                if "Traceback" in done.stderr:
                    self.operator_errors.append(f"traceback from ingest {' '.join(args)}")
                time.sleep(3 + attempt * 3)
            self.operator_errors.append(f"ingest {' '.join(args)} never succeeded")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)


def log_errors(workdir: Path) -> dict[str, int]:
    """Error and critical log events of every worker and beat, by task and exception:
    what an operator would find in the logs after such a day."""
    import re

    from tests.support.logs import Events

    counts: dict[str, int] = {}
    for path in sorted(workdir.glob("celery-*.log")):
        for event in Events.parse(path.read_text(errors="replace")):
            if event.get("level") not in ("error", "critical"):
                continue
            text = str(event.get("event", ""))
            task = re.match(r"Task (\S+)\[", text)
            where = task.group(1) if task else text[:70]
            last = str(event.get("exception") or "").strip().splitlines()[-1:] or [""]
            if last[0].startswith("(Background on this error"):
                last = [str(event.get("exception")).split("sqlalchemy.exc.")[-1][:60]]
            key = f"{event['level']}: {where}: {last[0][:90]}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _add_feeds(web: SoakWeb) -> dict[str, int]:
    from worker import store
    from worker.db import session_scope

    ids: dict[str, int] = {}
    with session_scope() as session:
        for name in web.feed_names:
            feed, _ = store.upsert_feed(session, name=name, url=web.feed_url(name))
            session.flush()
            assert feed.id is not None
            ids[name] = feed.id
    return ids


def run(args: argparse.Namespace) -> dict[str, Any]:
    from worker import migrate
    from worker.db import dispose_engines
    from worker.settings import reset_settings

    short = args.minutes < 10
    mean_gap = args.fault_every or (5.0 if short else 25.0)
    log("seed", seed=args.seed, minutes=args.minutes, mean_fault_gap_s=mean_gap)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    redis = services.start_redis()
    pg = services.start_postgres()
    web: SoakWeb | None = None
    deployment: Deployment | None = None
    try:
        direct_url = pg.create_database("soak")
        proxy = ChaosProxy(upstream_port=pg.port).start()
        proxied_url = direct_url.replace(f":{pg.port}/", f":{proxy.port}/")
        common = {
            "INGEST_BROKER_URL": redis.url,
            "INGEST_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/29",  # the outlets and the hostile host
            "INGEST_BEAT_INTERVAL_SECONDS": "1",
            "INGEST_PER_HOST_RATE": "100000",
            "INGEST_PER_HOST_BURST": "100000",
            "INGEST_POLL_INTERVAL_SECONDS": "30",
            "INGEST_MIN_POLL_INTERVAL_SECONDS": "10",
            "INGEST_STALE_PENDING_SECONDS": "20",
            # A poll message lost with Redis leaves its feed claimed this long (300 s in
            # production, where feeds are polled every 15 minutes).
            "INGEST_FEED_LEASE_SECONDS": "45",
            "INGEST_TASK_TIME_LIMIT": "30",
            "INGEST_BROKER_VISIBILITY_TIMEOUT": "45",
            "INGEST_TOTAL_TIMEOUT": "10",
            "INGEST_READ_TIMEOUT": "5",
            # The breaker pauses the hostile host; paused for 20 s, not 5 minutes, so the
            # drain is not a wait for the pause (every other timing is scaled down too).
            "INGEST_HOST_BREAKER_WINDOW_SECONDS": "60",
            "INGEST_HOST_BREAKER_PAUSE_SECONDS": "20",
            "INGEST_LOG_LEVEL": "INFO",
        }
        env = {**common, "INGEST_DATABASE_URL": proxied_url}
        direct_env = {**common, "INGEST_DATABASE_URL": direct_url}
        os.environ.update(direct_env)
        reset_settings()
        dispose_engines()
        migrate.upgrade(direct_url)

        pages = load_pages(SHARED_DATA)
        names = [f"soak-{i}" for i in range(args.feeds)]
        web = SoakWeb(pages, names, seed=args.seed).start()
        for _ in range(args.feeds * 2):  # every feed starts with a couple of items
            web.publish_one(kind="fresh")
        feed_ids = _add_feeds(web)

        deployment = Deployment(env=env, direct_env=direct_env, workdir=workdir, redis=redis,
                                pg=pg, proxy=proxy, concurrency=args.concurrency)  # fmt: skip
        for i in range(args.workers):
            deployment.start_worker(f"w{i + 1}")
        deployment.start_beat()
        deployment.start_api()

        for name, proc in deployment.workers.items():
            wait_until(lambda p=proc: "ready" in p.log(), timeout=120, what=f"worker {name} ready")  # type: ignore[misc]
        started = time.monotonic()
        until = started + args.minutes * 60
        web.publish_every(args.publish_every)
        faults = FaultScheduler(deployment, web, seed=args.seed, mean_gap=mean_gap,
                                until=until, short=short)  # fmt: skip
        faults.start()
        next_report = started + 30
        while time.monotonic() < until:
            time.sleep(1)
            deployment.supervise()
            if time.monotonic() >= next_report:
                next_report += 30
                log("progress", published=len(web.items), faults=len(faults.injected),
                    open_db_connections=proxy.open_connections)  # fmt: skip
        fault_phase_end = datetime.now(UTC)
        web.stop_publishing()
        faults.join(timeout=60)
        faults.heal()
        log("faults over; draining", published=len(web.items), faults=len(faults.injected))

        drain_started = time.monotonic()
        make_all_feeds_due(direct_url)
        deadline = drain_started + args.drain_timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            deployment.supervise()
            state = drained(direct_url, web.items, feed_ids)
            if state["done"]:
                break
            time.sleep(3)
        drain_seconds = time.monotonic() - drain_started
        log(
            "drain", seconds=round(drain_seconds), **{k: v for k, v in state.items() if k != "done"}
        )

        report = check_invariants(
            direct_url, web.items, feed_ids,
            metrics_url=f"http://127.0.0.1:{deployment.api_port}/metrics",
            fault_phase_end=fault_phase_end,
        )  # fmt: skip
        report.update({
            "command": " ".join(["bench/soak.py", *sys.argv[1:]]),
            "date": datetime.now(UTC).date().isoformat(),
            "seed": args.seed,
            "minutes": args.minutes,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "faults_injected": len(faults.injected),
            "faults_by_kind": _count(f["kind"] for f in faults.injected),
            "faults": faults.injected,
            "operator_errors": faults.operator_errors,
            "unexpected_exits": deployment.unexpected_exits,
            "published": len(web.items),
            "published_by_kind": _count(i.kind for i in web.items),
            "drain_seconds": round(drain_seconds, 1),
            "drained": bool(state.get("done")),
            "proxy": proxy.counts,
            "log_errors": log_errors(workdir),
        })  # fmt: skip
        if not state.get("done"):
            report["violations"].append(f"not drained after {args.drain_timeout:.0f}s: {state}")
        if faults.operator_errors:
            report["violations"].extend(faults.operator_errors)
        if deployment.unexpected_exits:  # a fault must be survived, not restarted from
            report["violations"].append(f"processes exited: {deployment.unexpected_exits}")
        report["ok"] = not report["violations"]
        return report
    finally:
        if deployment is not None:
            deployment.stop()
        if web is not None:
            web.stop()
        redis.stop()
        pg.stop(remove=not args.keep)
        if args.keep:
            log("kept", workdir=str(workdir), pg_datadir=str(pg.datadir))
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _last_error(process_log: str) -> str:
    """The last line of a process's log that names an error, for the report: the logs
    are removed after the run (unless ``--keep``), so a CI failure would otherwise say
    only that the process exited, not why."""
    for line in reversed(process_log.splitlines()):
        if "rror" in line or "Traceback" in line:
            return line.strip()[-500:]
    return "no error in its log"


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def print_report(report: dict[str, Any]) -> None:
    lines = [
        f"seed {report['seed']}, {report['minutes']} min, {report['workers']} workers × "
        f"{report['concurrency']}",
        f"faults injected   {report['faults_injected']}  {report['faults_by_kind']}",
        f"items published   {report['published']}  {report['published_by_kind']}",
        f"entries           {report['entries']}  {report['entries_by_status']}",
        f"articles/stories  {report['articles']} / {report['stories']}",
        f"lost              {report['lost']}",
        f"duplicated        {report['duplicated']}",
        f"p95 latency       {report['latency_p95_s']} s under faults "
        f"(p50 {report['latency_p50_s']} s, {report['latency_samples']} items)",
        f"drain             {report['drain_seconds']} s",
        f"restarts          {len(report['unexpected_exits'])} unexpected: "
        f"{report['unexpected_exits']}",
        f"log errors        {sum(report['log_errors'].values())}",
        *(f"  {n:5d}  {k}" for k, n in list(report["log_errors"].items())[:12]),
        f"invariants        {'all hold' if report['ok'] else 'VIOLATED'}",
    ]
    for violation in report["violations"]:
        lines.append(f"  - {violation}")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="Length of the fault phase.")
    parser.add_argument("--seed", type=int, default=None, help="Seed of faults and publishing.")
    parser.add_argument("--feeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--publish-every", type=float, default=2.0,
                        help="Mean seconds between published items.")  # fmt: skip
    parser.add_argument("--fault-every", type=float, default=None,
                        help="Mean seconds between faults (25; 5 under 10 min).")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=420.0)
    parser.add_argument("--keep", action="store_true", help="Keep logs and PostgreSQL data.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the report here.")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    report = run(args)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = args.json or RESULTS_DIR / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    print(f"report: {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
