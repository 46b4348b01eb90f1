"""Runtime settings, read from ``INGEST_*`` environment variables.

Settings are built on demand by :func:`get_settings` (never at import time) so
tests and the CLI can point one process at a fresh database or broker by
setting environment variables before they ask for them.

Every setting may also come from a file: ``INGEST_<NAME>_FILE=/run/secrets/x`` reads
the value from that file. Containers get passwords and tokens that way (compose
``secrets:``, mounted under /run/secrets), so they appear in no environment listing,
``docker inspect`` or image layer; the convention is the official postgres image's
``POSTGRES_PASSWORD_FILE``.
"""

from __future__ import annotations

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

DEFAULT_USER_AGENT = (
    "ukraine-security-ingest/0.1 "
    "(+https://github.com/ukraine-security-ingest/worker; news ingestion)"
)


class SettingsFileError(SettingsError):
    """An ``INGEST_<NAME>_FILE`` that cannot be used; the message names the variable."""


class FileSettingsSource(PydanticBaseSettingsSource):
    """``INGEST_<NAME>_FILE``: the setting's value is the content of that file.

    One trailing line break is dropped (``echo secret > file`` writes one; a password
    never ends with it). A file that cannot be read is an error, not a silent default:
    a worker that quietly fell back to SQLite or to no API token would look healthy
    while doing the wrong thing. Setting both ``INGEST_X`` and ``INGEST_X_FILE`` is an
    error too, since either could be the stale one.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Required by the base class; __call__ reads every field at once instead.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", ""))
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = f"{prefix}{name}".upper()
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable) is not None:
                raise SettingsFileError(
                    f"{variable} and {variable}_FILE are both set: keep one of them"
                )
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise SettingsFileError(f"{variable}_FILE: cannot read {path}: {reason}") from exc
            text = text.removesuffix("\n").removesuffix("\r")
            try:
                values[name] = self.prepare_field_value(name, field, text, False)
            except json.JSONDecodeError as exc:
                raise SettingsFileError(f"{variable}_FILE: {path} is not JSON: {exc}") from exc
        return values


class Settings(BaseSettings):
    """Every knob an operator may turn. Each field maps to ``INGEST_<NAME>``, or to the
    content of the file named by ``INGEST_<NAME>_FILE``."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=None, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, plus ``INGEST_<NAME>_FILE`` (never both for one setting)."""
        return (
            init_settings,
            env_settings,
            FileSettingsSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    database_url: str = Field(
        default="sqlite:///data/ingest.db",
        description="SQLAlchemy URL. SQLite by default; postgresql+psycopg://... in production.",
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Celery broker. Redis in production; sqla+sqlite:///... for the embedded mode.",
    )
    result_backend: str | None = Field(
        default=None, description="Celery result backend; unset = results are not stored."
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for shared locks and rate limits; defaults to broker_url when redis.",
    )

    # Polling.
    poll_interval_seconds: int = Field(default=900, ge=30, description="Base feed poll interval.")
    min_poll_interval_seconds: int = Field(default=300, ge=10)
    max_poll_interval_seconds: int = Field(default=6 * 3600, ge=60)
    max_backoff_seconds: int = Field(default=24 * 3600, ge=60)
    disable_after_days: float = Field(
        default=7.0, gt=0, description="Disable a feed after failing this long."
    )
    due_batch_size: int = Field(default=500, ge=1, le=10_000)
    due_claims_per_tick: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Batches of due feeds one beat tick may claim (docs/scale-feeds.md).",
    )
    beat_interval_seconds: float = Field(default=60.0, gt=0)

    # HTTP.
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_private_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs exempt from the SSRF guard, e.g. 127.0.0.1/32 for tests and the demo.",
    )
    per_host_rate: float = Field(default=1.0, gt=0, description="Requests/second per host.")
    per_host_burst: int = Field(default=3, ge=1)
    host_rates: dict[str, float | dict[str, float]] = Field(
        default_factory=dict,
        description='Per-host overrides as JSON: {"example.com": 0.5} or '
        '{"example.com": {"rate": 0.5, "burst": 1}}; a domain covers its subdomains.',
    )
    rate_limit_max_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest a fetch waits for its host's turn; beyond it the fetch is retried "
        "later (the feed poll is rescheduled without counting as a failure).",
    )
    host_pause_on_429_seconds: float = Field(
        default=60.0, ge=0, description="Pause for a host that sent 429 without Retry-After."
    )
    host_breaker_failures: int = Field(
        default=3,
        ge=0,
        description="Pause a host for every worker after this many timeouts or 5xx answers "
        "from it within the window (a URL's 5xx count once; each timeout counts); 0 = off.",
    )
    host_breaker_window_seconds: float = Field(
        default=300.0, gt=0, description="The window in which the host's failures are counted."
    )
    host_breaker_pause_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long the circuit breaker pauses a host; its entries are deferred "
        "until then (keep it below the broker visibility timeout).",
    )
    respect_robots: bool = True
    robots_ttl_seconds: int = Field(default=24 * 3600, ge=60, description="robots.txt cache TTL.")
    revalidate_every_polls: int = Field(
        default=10,
        ge=1,
        description="Every Nth poll of a feed is an unconditional GET that checks whether the "
        "server's 304s/ETag can be trusted (stale validators turn conditional GET off).",
    )
    poll_jitter_fraction: float = Field(default=0.1, ge=0, le=1)

    @field_validator("host_rates")
    @classmethod
    def _check_host_rates(
        cls, value: dict[str, float | dict[str, float]]
    ) -> dict[str, float | dict[str, float]]:
        for host, rate in value.items():
            number = rate.get("rate", 0.0) if isinstance(rate, dict) else rate
            if number <= 0:
                raise ValueError(f"host rate for {host!r} must be > 0")
        return value

    # Pipeline.
    classifier: Literal["hybrid", "neighbours"] = Field(
        default="hybrid",
        description="Classification method: 'hybrid' (rules + learned stage, pure Python) or "
        "'neighbours' (adds nearest labelled neighbours in sentence-embedding space; needs the "
        "optional 'neighbours' extra and torch). Changing it changes classifier_version: run "
        "`ingest reclassify` afterwards.",
    )
    task_time_limit: int = Field(default=120, ge=5)
    retry_base_seconds: float = Field(
        default=1.0,
        gt=0,
        le=600,
        description="Wait before a task's first retry; each later retry waits up to twice as "
        "long as the one before (never less than this, at most 600 s), or the server's "
        "Retry-After when that is longer.",
    )
    broker_visibility_timeout: int | None = Field(
        default=None,
        ge=5,
        description="Seconds before Redis redelivers an unacknowledged task (a dead worker's); "
        "unset = derived from task_time_limit. Must exceed the longest task and retry countdown.",
    )
    feed_lease_seconds: float = Field(
        default=300.0,
        ge=10,
        description="How long a poll may hold its feed, and how far beat pushes a feed it "
        "has claimed: a poll message lost with Redis leaves the feed unpolled this long. "
        "Must exceed the longest poll (total_timeout plus parsing).",
    )
    stale_pending_seconds: int = Field(
        default=900,
        ge=1,
        description="Beat re-enqueues entries pending this long (their task message was lost).",
    )
    max_entry_attempts: int = Field(
        default=8,
        ge=1,
        description="Give up on an entry after this many started attempts (crash loops).",
    )
    entry_batch_size: int = Field(
        default=8,
        ge=1,
        le=100,
        description="At most this many entries of one poll per task (one message), split evenly; "
        "1 = one task per entry.",
    )
    child_max_entries: int = Field(
        default=10_000,
        ge=1,
        description="A pool child is replaced after about this many entries (a backstop against "
        "slow leaks; each replacement leaves its slot empty for about a second).",
    )
    child_max_memory_mb: int = Field(
        default=600,
        ge=1,
        description="A pool child whose peak resident memory passes this many MiB is replaced "
        "after its current task (a steady child holds ~270 MiB).",
    )
    min_body_chars: int = Field(default=200, ge=0)
    dedup_window_days: float = Field(default=3.0, gt=0)
    refetch_after_seconds: int = Field(
        default=3600,
        ge=0,
        description="An entry whose URL was fetched less than this ago (from another feed) is "
        "linked to the stored article without a fetch; 0 always fetches.",
    )

    # Retention of feed_polls (docs/schema.md, "feed_polls").
    feed_polls_retention_days: int = Field(
        default=14,
        ge=1,
        description="Polls older than this many days are pruned hourly, except each feed's "
        "newest 'ok' poll and every poll after it (the last good poll and the "
        "conditional-GET guard's history stay right).",
    )

    # The change feed (docs/schema.md, "Change feed").
    changes_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Keep change-feed entries this long; a reader further behind gets HTTP 410 "
        "(exit 4) and must resync.",
    )
    changes_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often beat numbers new changes and prunes old ones (readers of "
        "GET /changes and `ingest changes` number them themselves).",
    )

    # Webhooks (docs/operations.md, "Webhooks").
    webhook_max_failures: int = Field(
        default=10,
        ge=1,
        description="Pause a webhook subscription after this many failed deliveries in a row "
        "(`ingest subscriptions resume` delivers again from where it stopped).",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Timeout of each step of a webhook POST."
    )
    webhook_retry_base_seconds: float = Field(
        default=2.0, gt=0, description="Wait after a first failed delivery; doubles each time."
    )
    webhook_retry_max_seconds: float = Field(
        default=600.0, gt=0, description="Longest wait between two delivery attempts."
    )
    webhook_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often beat looks for subscriptions with new changes to deliver.",
    )
    webhook_batch_size: int = Field(
        default=100, ge=1, le=1000, description="Changes one delivery run reads per page."
    )

    # API.
    api_token: str | None = Field(default=None, description="Bearer token for write endpoints.")
    api_read_requires_token: bool = False
    api_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest API request body; a larger one is refused with 413 unread.",
    )

    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port for the worker's Prometheus metrics."
    )

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("allow_private_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for cidr in value:
                ipaddress.ip_network(str(cidr), strict=False)
        return value

    @property
    def effective_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; :func:`reset_settings` drops the cache (tests)."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
