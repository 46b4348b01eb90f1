"""Reading the operator's feed list (``config/feeds.toml``) into validated specs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator


class FeedSpec(BaseModel):
    """One ``[[feed]]`` table; unknown keys are refused so typos surface."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    url: str = Field(min_length=8, max_length=2048)
    tags: list[str] = Field(default_factory=list)
    language: str | None = Field(default=None, max_length=16)
    poll_interval_seconds: int | None = Field(default=None, ge=30)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value


class FeedConfigError(ValueError):
    """The feed file is unreadable or invalid; the message says where."""


def load_feed_specs(path: Path) -> list[FeedSpec]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FeedConfigError(f"{path}: no such file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FeedConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw = data.get("feed")
    if not isinstance(raw, list) or not raw:
        raise FeedConfigError(f"{path}: expected one or more [[feed]] tables")
    specs: list[FeedSpec] = []
    names: set[str] = set()
    urls: set[str] = set()
    for index, item in enumerate(raw, start=1):
        try:
            spec = FeedSpec.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise FeedConfigError(f"{path}: feed #{index}: {problems}") from exc
        if spec.name in names or spec.url in urls:
            raise FeedConfigError(f"{path}: feed #{index}: duplicate name or url ({spec.name})")
        names.add(spec.name)
        urls.add(spec.url)
        specs.append(spec)
    return specs
