"""requirements/: the pinned locks agree with pyproject.toml, with each other, with the
image and with CI, and never pull in a CUDA torch; scripts/audit.sh skips offline."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "lock.txt"
TEST_LOCK = REPO / "requirements" / "test-lock.txt"
TORCH_CPU = REPO / "requirements" / "torch-cpu.txt"
REFRESH = "run `bash scripts/refresh-lock.sh` to update the locks"


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a compiled lock (continuation and comment lines skipped)."""
    result = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        requirement = line.split(" ;")[0].rstrip(" \\")
        name, sep, version = requirement.partition("==")
        assert sep, f"{path.name}: not an exact pin: {line}"
        result[canonicalize_name(name)] = version
    return result


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    """A dependency added to pyproject.toml without a refresh fails here, by name."""
    for lock, extras in ((LOCK, ()), (TEST_LOCK, ("test", "neighbours"))):
        locked = pins(lock)
        for requirement in declared(*extras):
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{requirement} is not in {lock.name}: {REFRESH}"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"{lock.name} pins {name}=={locked[name]}, outside {requirement}: {REFRESH}"
            )


def test_ci_tests_the_versions_the_image_ships() -> None:
    """The test lock is compiled under the runtime lock: every runtime pin is the same."""
    runtime, test = pins(LOCK), pins(TEST_LOCK)
    assert runtime.items() <= test.items(), {
        name: (version, test.get(name)) for name, version in runtime.items()
        if test.get(name) != version
    }  # fmt: skip


def test_runtime_lock_is_hashed_for_the_image() -> None:
    """`pip install --require-hashes` needs a hash under every pin."""
    blocks = re.split(r"\n(?=[a-z0-9])", LOCK.read_text().split("\n", 2)[2], flags=re.I)
    for block in blocks:
        if block.strip():
            assert "--hash=sha256:" in block, f"no hash: {block.splitlines()[0]}"


def test_no_cuda_torch() -> None:
    """PyPI's default torch wheel is the CUDA build with ~3 GB of nvidia-* packages."""
    for lock in (LOCK, TEST_LOCK):
        names = pins(lock)
        assert not [n for n in names if n.startswith(("nvidia-", "triton"))], lock.name
    torch = pins(TEST_LOCK)["torch"]
    assert torch.endswith("+cpu"), torch
    assert f"torch=={torch}" in TORCH_CPU.read_text()
    # scripts/test.sh and the Dockerfile ask for the same release the lock pins.
    release = torch.removesuffix("+cpu")
    for path in ("scripts/test.sh", "deploy/Dockerfile"):
        assert f"torch=={release}" in (REPO / path).read_text(), path


def test_image_and_ci_install_from_the_locks() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/lock.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    assert "LOCK=requirements/test-lock.txt" in test_sh
    installs = [line for line in test_sh.splitlines() if "pip install -q" in line]
    assert [line for line in installs if "upgrade pip" not in line]
    for line in installs:
        assert "upgrade pip" in line or '-c "$LOCK"' in line, line


def test_audit_skips_with_a_message_when_no_advisory_database_answers() -> None:
    """Offline (here: both probes at a closed local port) the audit says so and exits 0."""
    env = {
        **os.environ,
        "AUDIT_PYPI_PROBE": "http://127.0.0.1:9/pypi/pip/24.0/json",
        "AUDIT_OSV_PROBE": "http://127.0.0.1:9/v1/query",
        "AUDIT_PROBE_TIMEOUT": "2",
    }
    done = subprocess.run(["bash", str(REPO / "scripts" / "audit.sh")], env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pip-audit skipped: no advisory database answered"), done.stdout
