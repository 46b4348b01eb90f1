#!/usr/bin/env bash
# A separate virtualenv for the peers bench/peers.py compares us with
# (news-please, fundus, and the plain feedparser + httpx + trafilatura script).
# Their dependencies (scrapy, newspaper, lxml pins...) must not enter the
# project's .venv, so they live here, outside the repository.
#
#   bash scripts/peers-venv.sh [/work/peers-venv]
#   .venv/bin/python bench/peers.py --peers-python /work/peers-venv/bin/python
set -euo pipefail
VENV="${1:-${PEERS_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/peers-venv}}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
# curl_cffi 0.14+ dropped normalize_browser_type, which fundus 0.5.7 imports.
"$VENV/bin/pip" install --quiet \
    "news-please==1.6.16" \
    "fundus==0.5.7" "curl_cffi<0.14" \
    "feedparser" "httpx" "trafilatura"
"$VENV/bin/python" -c "import newsplease, fundus, feedparser, httpx, trafilatura; print('peers venv ready:', '$VENV')"
