"""Start real services (redis-server, a PostgreSQL cluster, Celery workers) for tests.

Each starter picks a free loopback port, waits until the service answers, and
returns a handle whose ``stop()`` tears it down. Used by the pytest fixtures and
by the benchmark, so both exercise the same real parts.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServiceUnavailableError(RuntimeError):
    """The binary for a service is not installed on this machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return self.db_url(0)

    def db_url(self, number: int) -> str:
        """The URL of one of the server's numbered databases (0-15)."""
        return f"redis://127.0.0.1:{self.port}/{number}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (fault-injection tests)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = _spawn_redis(self.port, self.workdir)
        wait_for_port(self.port)


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailableError(
            "redis-server is not installed (apt-get install redis-server)"
        )
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_redis() -> RedisServer:
    workdir = Path(tempfile.mkdtemp(prefix="test-redis-"))
    port = free_port()
    process = _spawn_redis(port, workdir)
    wait_for_port(port)
    return RedisServer(port=port, process=process, workdir=workdir)


def _pg_bindir() -> Path:
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found and Path(found).with_name("postgres").exists():
            return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise ServiceUnavailableError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    bindir: Path
    run_as: list[str] = field(default_factory=list)
    fsync: bool = False
    """Off for tests (a throwaway cluster need not survive a power cut); on, with
    ``synchronous_commit``, for a benchmark of what a durable deployment pays."""
    settings: dict[str, str] = field(default_factory=dict)
    """Further server settings (``-c name=value``), e.g. the statistics a benchmark
    reads (``shared_preload_libraries=pg_stat_statements``, ``track_io_timing``)."""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            check=check,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        durability = "-c fsync=on -c synchronous_commit=on" if self.fsync else "-c fsync=off"
        extra = "".join(f" -c {name}={value}" for name, value in self.settings.items())
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 {durability}{extra}"
        )
        self._pg_ctl("-w", "-t", "60", "-o", options, "-l", str(self.datadir / "log"), "start")
        wait_for_port(self.port)

    def stop(self, *, remove: bool = True) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop", check=False)
        if remove:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_postgres(
    *, fsync: bool = False, settings: dict[str, str] | None = None
) -> PostgresServer:
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="test-pg-"))
    datadir = base / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: run the cluster as the postgres user.
        shutil.chown(base, user="postgres")
        os.chmod(base, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    server = PostgresServer(
        port=free_port(),
        datadir=datadir,
        bindir=bindir,
        run_as=run_as,
        fsync=fsync,
        settings=dict(settings or {}),
    )
    server.start()
    return server


@dataclass
class CeleryProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool children."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_celery(
    role: str,
    env: dict[str, str],
    *,
    workdir: Path,
    concurrency: int = 2,
    extra: list[str] | None = None,
    cpus: Collection[int] | None = None,
    module: str = "worker.cli",
) -> CeleryProcess:
    """Start ``ingest worker`` or ``ingest beat`` (the same commands the containers run).

    ``cpus`` pins the process to those cores before it starts, so the pool it
    forks inherits the pinning: a benchmark can then say how many cores it gave
    each worker (bench/run.py ``--pin``) instead of leaving it to the scheduler.
    ``module``: what ``python -m`` runs; ``bench.stage_cpu`` is ``ingest`` with the
    pipeline's stages probed (bench/run.py ``--stage-cpu``).
    """
    log_path = workdir / f"celery-{role}-{time.monotonic_ns()}.log"
    args = [sys.executable, "-m", module, role]
    if role == "worker":
        args += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]
    else:
        args += ["--schedule", str(workdir / f"beat-{time.monotonic_ns()}")]
    args += extra or []
    full_env = {**os.environ, **env}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args,
            env=full_env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pin_to(cpus) if cpus is not None else None,
        )
    return CeleryProcess(process=process, log_path=log_path)


def _pin_to(cpus: Collection[int]) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to ``cpus`` (one syscall, no locks taken)."""
    cores = set(cpus)

    def pin() -> None:
        os.sched_setaffinity(0, cores)

    return pin
