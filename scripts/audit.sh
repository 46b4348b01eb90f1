#!/usr/bin/env bash
# Check the pinned locks against known vulnerabilities with pip-audit.
#
#   bash scripts/audit.sh                 # requirements/lock.txt and requirements/test-lock.txt
#   bash scripts/audit.sh requirements/lock.txt
#
# Exit 0: no known vulnerability, or no advisory database reachable (it says so and skips).
# Exit 1: pip-audit found a vulnerability (or failed); its report names the package and the fix.
#
# pip-audit needs an advisory database: PyPI's JSON API (its default) or OSV. Where neither
# answers within AUDIT_PROBE_TIMEOUT seconds (an offline CI, a mirror-only network), the
# audit is skipped with a message instead of failing: no network is not a vulnerability.
# The locks are fully pinned, so pip-audit reads them as they are (--disable-pip, with
# --require-hashes for the hashed runtime lock, else --no-deps) instead of building a
# virtualenv of them. A package the database does not know (torch's +cpu build on PyPI's)
# is listed as skipped, not failed. pip-audit runs from its own virtualenv
# (AUDIT_TOOLS_VENV), never from the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_AUDIT_VERSION=2.10.1
timeout_s=${AUDIT_PROBE_TIMEOUT:-5}
# The probes' addresses; the tests point them at a closed local port to check the skip.
pypi_probe=${AUDIT_PYPI_PROBE:-https://pypi.org/pypi/pip/24.0/json}
osv_probe=${AUDIT_OSV_PROBE:-https://api.osv.dev/v1/query}
locks=("$@")
((${#locks[@]})) || locks=(requirements/lock.txt requirements/test-lock.txt)

# Which advisory database answers? A real query each, for a package both know.
service=$(python3 - "$timeout_s" "$pypi_probe" "$osv_probe" <<'PY'
import json
import sys
import urllib.request

timeout = float(sys.argv[1])
probes = {
    "pypi": urllib.request.Request(sys.argv[2]),
    "osv": urllib.request.Request(
        sys.argv[3],
        data=json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"},
                         "version": "24.0"}).encode(),
        headers={"Content-Type": "application/json"},
    ),
}
for name, request in probes.items():
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except Exception:  # unreachable, refused, 404, not JSON: this database is not usable
        continue
    if name == "osv" or "vulnerabilities" in body:
        print(name)
        break
PY
)
if [ -z "$service" ]; then
  echo "pip-audit skipped: no advisory database answered within ${timeout_s}s" \
    "(PyPI's JSON API: $pypi_probe; OSV: $osv_probe)." \
    "Run bash scripts/audit.sh where one of them is reachable."
  exit 0
fi

venv=${AUDIT_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ukraine-security-ingest/audit-tools}
if ! "$venv/bin/pip-audit" --version 2>/dev/null | grep -qx "pip-audit $PIP_AUDIT_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q "pip-audit==$PIP_AUDIT_VERSION"
fi

status=0
for lock in "${locks[@]}"; do
  mode=--no-deps
  grep -q -- "--hash=" "$lock" && mode=--require-hashes
  echo "pip-audit ($service): $lock"
  "$venv/bin/pip-audit" --vulnerability-service "$service" --progress-spinner off \
    --disable-pip "$mode" -r "$lock" || status=1
done
exit "$status"
