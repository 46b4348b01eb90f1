"""Reading the operator's feed list (``config/feeds.toml``) into validated feeds."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ConfigDict, ValidationError

from .schemas import FeedIn, describe


class FeedSpec(FeedIn):
    """One ``[[feed]]`` table: the fields of ``POST /feeds``, with unknown keys refused
    (the API ignores them), so a typo in the file is an error, not a lost setting."""

    model_config = ConfigDict(extra="forbid")


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
            raise FeedConfigError(f"{path}: feed #{index}: {describe(exc)}") from exc
        if spec.name in names or spec.url in urls:
            raise FeedConfigError(f"{path}: feed #{index}: duplicate name or url ({spec.name})")
        names.add(spec.name)
        urls.add(spec.url)
        specs.append(spec)
    return specs
