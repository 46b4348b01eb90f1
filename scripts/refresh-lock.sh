#!/usr/bin/env bash
# Regenerate the pinned dependency locks from pyproject.toml with `uv pip compile`:
#   requirements/lock.txt       the runtime dependencies, with hashes: deploy/Dockerfile
#                               installs exactly these (`pip install -r`), then the package
#                               with --no-deps;
#   requirements/test-lock.txt  runtime + the `test` and `neighbours` extras: scripts/test.sh
#                               installs under it as a constraints file (`pip install -c`).
# The test lock is compiled under the runtime lock, so CI tests the versions the image ships.
#
#   bash scripts/refresh-lock.sh                        # add what pyproject.toml gained, keep the rest
#   bash scripts/refresh-lock.sh --upgrade              # newest versions of everything
#   bash scripts/refresh-lock.sh --upgrade-package fastapi
#
# Pins already in the files are kept unless asked (uv reads the existing output as
# preferences), so a refresh after adding one dependency changes only what it pulls in.
#
# torch: PyPI's default Linux wheel of torch is the CUDA build, which pulls in ~3 GB of
# nvidia-* packages. The test lock pins the CPU build instead (requirements/torch-cpu.txt),
# whose wheel uv finds through PIP_FIND_LINKS (this machine's wheel folder) or the index
# in TORCH_INDEX_URL (e.g. PyTorch's CPU index, as in deploy/Dockerfile).
#
# uv runs from its own virtualenv (LOCK_TOOLS_VENV), never from the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
# The image's and CI's interpreter and platform; lock for these, not for whatever runs this.
PYTHON_VERSION=3.11
PLATFORM=x86_64-manylinux_2_28

venv=${LOCK_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ukraine-security-ingest/lock-tools}
if ! "$venv/bin/uv" --version 2>/dev/null | grep -qx "uv $UV_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
uv=$venv/bin/uv

common=(--python-version "$PYTHON_VERSION" --python-platform "$PLATFORM"
        --custom-compile-command "bash scripts/refresh-lock.sh" --quiet)
torch_sources=()
for folder in ${PIP_FIND_LINKS:-}; do torch_sources+=(--find-links "$folder"); done
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  # Only torch comes from that index: its copies of numpy & co must not shadow PyPI's.
  torch_sources+=(--extra-index-url "$TORCH_INDEX_URL" --index-strategy unsafe-best-match)
fi

"$uv" pip compile pyproject.toml "${common[@]}" --generate-hashes \
  -o requirements/lock.txt "$@"
if ! "$uv" pip compile pyproject.toml "${common[@]}" --extra test --extra neighbours \
  -c requirements/lock.txt -c requirements/torch-cpu.txt "${torch_sources[@]}" \
  -o requirements/test-lock.txt "$@"; then
  echo "refresh-lock: the test lock did not resolve. If torch is what is missing, point" \
    "PIP_FIND_LINKS at a folder holding the CPU wheel named in requirements/torch-cpu.txt," \
    "or TORCH_INDEX_URL at PyTorch's CPU index." >&2
  exit 1
fi
echo "refresh-lock: wrote requirements/lock.txt and requirements/test-lock.txt"
