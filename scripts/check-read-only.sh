#!/usr/bin/env bash
# Run every ingest role of deploy/compose.yaml the way its hardened container does, without
# a Docker engine: a read-only root filesystem, uid/gid 10001, no capabilities,
# no-new-privileges, and only /tmp (a tmpfs, as compose mounts) plus a /data stand-in
# writable. Then `ingest demo` (fetch, extract, classify, store, with a real worker and beat)
# under the same limits. Any write elsewhere fails with EROFS/EACCES, and the check with it.
#
#   sudo bash scripts/check-read-only.sh        # ~1 min; needs root (a private mount
#                                               # namespace), util-linux and redis-server
#
# Not part of CI (it needs root and a minute); docs/operations.md says when it last passed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ "$(id -u)" = 0 ] || { echo "check-read-only: needs root (mount namespace)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "check-read-only: needs redis-server" >&2; exit 2; }

work=$(mktemp -d /tmp/check-read-only.XXXXXX)
port=$(( 20000 + RANDOM % 20000 ))
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" >/dev/null
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null || true; rm -rf "$work"' EXIT

# Inside the namespace, as root: make the interpreter reachable for uid 10001 (it may live
# under a private home), make every mount read-only, then drop to the container's user.
inner=$(cat <<'SH'
set -euo pipefail
real=$(readlink -f "$PY")
prefix=$(dirname "$(dirname "$real")")
case "$prefix" in
  /root/*) mkdir -p "$WORK/prefix"; mount --bind "$prefix" "$WORK/prefix"
           mount -t tmpfs -o mode=755 tmpfs /root; mkdir -p "$prefix"
           mount --bind "$WORK/prefix" "$prefix"; mount -o remount,ro /root ;;
esac
mount -o remount,bind,ro /
mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp
install -d -o 10001 -g 10001 /tmp/data          # the named volume (/data in compose)
if touch /probe 2>/dev/null; then echo "root filesystem still writable" >&2; exit 1; fi
as_container() {
  setpriv --reuid 10001 --regid 10001 --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs env -i PATH=/usr/bin:/bin HOME=/app PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH="$REPO" INGEST_LOG_JSON=true \
    INGEST_DATABASE_URL=sqlite:////tmp/data/ingest.db INGEST_BROKER_URL="$BROKER" "$@"
}
cd /
as_container "$PY" -m worker.cli db upgrade >/tmp/data/migrate.log 2>&1
echo "ok   migrate: ingest db upgrade"
as_container env INGEST_METRICS_PORT="$METRICS" "$PY" -m worker.cli worker --concurrency 2 \
  >/tmp/worker.log 2>&1 & pids=$!
as_container "$PY" -m worker.cli beat --schedule /tmp/data/celerybeat-schedule \
  >/tmp/beat.log 2>&1 & pids="$pids $!"
as_container "$PY" -m worker.cli api --host 127.0.0.1 --port "$API" >/tmp/api.log 2>&1 &
pids="$pids $!"
get() { as_container "$PY" -c "import sys, urllib.request as u
print(u.urlopen(sys.argv[1], timeout=5).read().decode()[:60])" "$1"; }
for _ in $(seq 60); do
  get "http://127.0.0.1:$API/health" >/dev/null 2>&1 &&
    get "http://127.0.0.1:$METRICS/metrics" >/dev/null 2>&1 && break
  sleep 1
done
echo "ok   api: GET /health $(get "http://127.0.0.1:$API/health")"
echo "ok   worker: GET :$METRICS/metrics (multiprocess files in /tmp)"
as_container "$PY" -m worker.cli health >/dev/null && echo "ok   ingest health (the healthcheck)"
sleep 5
kill $pids; wait $pids 2>/dev/null || true
grep -q "beat: Starting" /tmp/beat.log && echo "ok   beat: started, schedule in /data"
if grep -hiE "read-only file system|Errno 30|Errno 13|PermissionError" /tmp/*.log /tmp/data/*.log
then echo "FAIL a role tried to write outside /tmp and /data" >&2; exit 1; fi
as_container "$PY" -m worker.cli demo >/tmp/demo.log 2>&1 ||
  { tail -20 /tmp/demo.log >&2; echo "FAIL ingest demo" >&2; exit 1; }
echo "ok   ingest demo: seed feed fetched, extracted, classified and stored"
echo "check-read-only: every role ran on a read-only root as uid 10001 without capabilities"
SH
)
PY=$python REPO=$repo WORK=$work BROKER="redis://127.0.0.1:$port/0" \
  METRICS=$(( port + 1 )) API=$(( port + 2 )) \
  unshare --mount --propagation private bash -c "$inner"
