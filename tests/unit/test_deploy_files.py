"""deploy/: a structural lint of the Dockerfile and the compose file, and
`docker compose config` when a compose client is installed (no engine needed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRETS = DEPLOY / "secrets"
SECRET_WORDS = re.compile(r"(PASSWORD|TOKEN|SECRET|API_KEY)", re.IGNORECASE)
MONITORING = {"prometheus", "blackbox", "grafana"}  # the `monitoring` profile
# Where each service may write on its read-only root: its tmpfs mounts (volumes aside).
WRITABLE = {
    "redis": set(),
    "postgres": {"/var/run/postgresql", "/tmp"},
    "migrate": {"/tmp"},
    "worker": {"/tmp"},
    "beat": {"/tmp"},
    "api": {"/tmp"},
    "flower": {"/tmp", "/data"},
    "prometheus": set(),
    "blackbox": set(),
    "grafana": {"/tmp"},
}
# Each `ingest` command a container runs, and the test that runs the same command
# (`ingest worker` and `ingest beat` through helpers.running_celery).
EXERCISED_BY = {
    ("db", "upgrade"): ("tests/integration/test_cli.py", '"worker.cli", "db", "upgrade"'),
    ("worker",): ("tests/integration/test_pipeline_e2e.py", "with running_celery("),
    ("beat",): ("tests/integration/test_pipeline_e2e.py", "beat=True"),
    ("api",): ("tests/integration/test_api.py", '"worker.cli", "api"'),
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_base_images_are_pinned() -> None:
    froms = [args.split()[0] for kw, args in instructions() if kw == "FROM"]
    assert froms
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_non_root_with_a_healthcheck() -> None:
    steps = instructions()
    users = [args for kw, args in steps if kw == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")
    last_from = max(i for i, (kw, _) in enumerate(steps) if kw == "FROM")
    assert any(kw == "USER" for kw, _ in steps[last_from:]), "runtime stage runs as root"
    assert any(kw == "HEALTHCHECK" for kw, _ in steps)
    entry = next(args for kw, args in steps if kw == "ENTRYPOINT")
    assert entry == '["ingest"]'


def test_no_remote_add_and_no_secrets() -> None:
    for keyword, args in instructions():
        if keyword == "ADD":
            assert not re.search(r"https?://", args), f"ADD of a URL: {args}"
        if keyword in ("ENV", "ARG"):
            assert not SECRET_WORDS.search(args), f"secret baked into the image: {args}"
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"secret|\.env\b|\.txt\.example", args), f"{keyword} {args}"


def test_compose_has_every_service_with_healthchecks_and_volumes() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {"redis", "postgres", "migrate", "worker", "beat", "api", "flower"} | (
        MONITORING
    )
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image, f"{name}: untagged image {image}"
        assert not image.endswith(":latest"), f"{name}: unpinned image {image}"
        if name != "migrate":
            assert "test" in service.get("healthcheck", {}), f"{name}: no healthcheck"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "beat", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["beat"]["deploy"]["replicas"] == 1
    assert set(data["volumes"]) >= {"pg-data", "redis-data", "beat-data", "prometheus-data"}
    assert any("pg-data:" in v for v in services["postgres"]["volumes"])


def test_compose_commands_are_the_ones_the_tests_run() -> None:
    """The containers run `ingest db upgrade|worker|beat|api`, each exercised by a test."""
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        command = tuple(service["command"])
        key = command[:2] if command[0] == "db" else command[:1]
        assert key in EXERCISED_BY, f"{name}: `ingest {' '.join(command)}` is run by no test"
        path, needle = EXERCISED_BY[key]
        assert needle in (REPO / path).read_text(), f"{path} no longer runs {needle}"


def test_no_secret_values_in_compose() -> None:
    """Passwords and tokens are compose secrets (files mounted under /run/secrets), never
    literals or environment values in the compose file, deploy/.env or the image."""

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k != "secrets":  # names of secrets and their files: checked below
                    walk(v, str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str) and SECRET_WORDS.search(key):
            assert node.startswith(("${", "/run/secrets/")) or node == "", (
                f"{key} has a literal value"
            )

    data = compose()
    walk(data)
    text = COMPOSE.read_text()
    for example in SECRETS.glob("*.example"):
        assert example.read_text().strip() not in text, f"{example.name}'s value in compose"
    for name, service in data["services"].items():
        environment = service.get("environment", {})
        # The values themselves would show in `docker inspect` and every process listing.
        for variable in ("POSTGRES_PASSWORD", "INGEST_API_TOKEN", "INGEST_DATABASE_URL"):
            assert variable not in environment, f"{name}: {variable} instead of {variable}_FILE"
        for variable, value in environment.items():
            if variable.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in service.get("secrets", []), f"{name}: {variable} not mounted"
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    for key, value in example.items():  # a switch such as *_REQUIRES_TOKEN=false at most
        assert not SECRET_WORDS.search(key) or value in ("true", "false"), f"{key} in .env"


def test_secrets_are_files_with_examples_and_never_committed() -> None:
    data = compose()
    files = {name: spec["file"] for name, spec in data["secrets"].items()}
    assert set(files) == {
        "postgres_password",
        "database_url",
        "api_token",
        "grafana_admin_password",
    }
    for name, path in files.items():
        assert path == f"./secrets/{name}.txt"
        assert (SECRETS / f"{name}.txt.example").is_file(), f"no example for {name}"
        assert name in (DEPLOY / "make-secrets.sh").read_text(), f"make-secrets.sh skips {name}"
    assert "/deploy/secrets/*.txt" in (REPO / ".gitignore").read_text().splitlines()
    used = {s for service in data["services"].values() for s in service.get("secrets", [])}
    assert used == set(files)
    # Only the API checks the token; every ingest role reads the database URL.
    for name in ("migrate", "worker", "beat", "api"):
        secrets = set(data["services"][name]["secrets"])
        assert secrets == ({"database_url", "api_token"} if name == "api" else {"database_url"})


def test_every_service_is_hardened() -> None:
    """No capability, no privilege gain, a read-only root (writable: volumes and the listed
    tmpfs mounts), and memory, CPU and process limits that deploy/.env may override."""
    services = compose()["services"]
    assert set(services) == set(WRITABLE)
    for name, service in services.items():
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "cap_add" not in service, f"{name}: every service runs without capabilities"
        assert "privileged" not in service, name
        assert service["read_only"] is True, f"{name}: read_only root claimed for every service"
        tmpfs = {mount.split(":")[0] for mount in service.get("tmpfs", [])}
        assert tmpfs == WRITABLE[name], name
        for key in ("mem_limit", "cpus"):
            assert re.fullmatch(r"\$\{[A-Z_]+:-[0-9.]+[kmg]?\}", str(service[key])), (name, key)
        assert int(service["pids_limit"]) > 0, name
    # Started as their images' own unprivileged users, Redis and PostgreSQL need no
    # capability to chown or switch users.
    assert services["redis"]["user"] == "redis"
    assert services["postgres"]["user"] == "postgres"
    operations = (REPO / "docs" / "operations.md").read_text()
    for service in services.values():
        variable = str(service["mem_limit"])[2:].split(":-")[0]
        assert variable in operations, f"{variable} is not documented in docs/operations.md"


def _compose_client() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            done = subprocess.run([*command, "version"], capture_output=True, timeout=30,
                                  check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return command
    return None


def test_docker_compose_config_validates() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client installed")
    done = subprocess.run(
        [*client, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_build_context_is_only_the_package_for_every_builder() -> None:
    """The root .dockerignore (read by BuildKit, the classic builder and compose v1 alike;
    a per-Dockerfile ignore file is BuildKit-only) keeps .venv, tests, data and secrets out."""
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**"
    assert set(lines[1:]) == {
        "!pyproject.toml",
        "!README.md",
        "!requirements/lock.txt",
        "!requirements/test-lock.txt",
        "!worker/**",
        "**/__pycache__",
    }
    assert not (DEPLOY / "Dockerfile.dockerignore").exists()


def test_dockerfile_needs_no_frontend_image() -> None:
    """A `# syntax=` line makes BuildKit pull a frontend image first: offline builds fail."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.MULTILINE)


def test_flower_is_published_on_loopback_by_default() -> None:
    """Flower has no login, so the host port must not be open to the network by default."""
    (mapping,) = compose()["services"]["flower"]["ports"]
    assert mapping.startswith("${FLOWER_BIND:-127.0.0.1}:")
