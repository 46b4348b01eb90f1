"""The PromQL of deploy/prometheus/alerts.yaml and deploy/grafana/ingest-dashboard.json,
taken apart far enough to check it against the metrics the service really exports."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "ingest-dashboard.json"

# Metrics the rules use that the service does not export itself, and who does.
EXTERNAL = {
    "up": "Prometheus, for every scrape target",
    "probe_success": "the blackbox exporter's probe of GET /health",
}
# PromQL words that look like metric names but are not.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(rf"({_NAME})?\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(rf'({_NAME})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    """``name{label="value", ...}``: a metric and its label matchers."""

    name: str
    matchers: tuple[tuple[str, str, str], ...] = field(default=())  # (label, op, value)

    def equalities(self) -> dict[str, str]:
        return {label: value for label, op, value in self.matchers if op == "="}


def selectors(expr: str) -> list[Selector]:
    """Every metric selector of a PromQL expression, in order."""
    found: list[Selector] = []
    # Matchers first (their values are strings), then the bare names that remain.
    for match in _SELECTOR.finditer(expr):
        if match.group(1) and match.group(1) not in KEYWORDS:
            found.append(Selector(match.group(1), tuple(_MATCHER.findall(match.group(2)))))
    rest = _SELECTOR.sub(lambda m: " " if m.group(1) in KEYWORDS else " _selector_ ", expr)
    rest = _STRING.sub(" ", rest)
    rest = _GROUPING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range and subquery durations
    rest = re.sub(r"\boffset\s+\S+", " ", rest)
    rest = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b", " ", rest)
    for match in re.finditer(rf"({_NAME})(\s*\()?", rest):
        name, call = match.group(1), match.group(2)
        if not call and name not in KEYWORDS and name != "_selector_":
            found.append(Selector(name))
    return found


def metric_names(expr: str) -> set[str]:
    return {selector.name for selector in selectors(expr)}


def grouping_labels(expr: str) -> set[str]:
    """The labels of every ``by (...)``/``without (...)``/``on (...)`` list."""
    labels: set[str] = set()
    for group in _GROUPING.findall(_STRING.sub(" ", expr)):
        inside = group[group.index("(") + 1 : -1]
        labels.update(part.strip() for part in inside.split(",") if part.strip())
    return labels


def worker_metric_names() -> set[str]:
    """The metrics the rules and the dashboard use that the worker serves (the API serves
    ``ingest_db_*`` and ``ingest_api_*``)."""
    return {
        name
        for expr in all_exprs()
        for name in metric_names(expr)
        if name.startswith("ingest_") and not name.startswith(("ingest_db_", "ingest_api_"))
    }


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    panels = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if "expr" in t]


def all_exprs() -> list[str]:
    return [rule["expr"] for rule in alert_rules()] + dashboard_exprs()


def scraped(text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it has, from a Prometheus text exposition; a family
    with no sample yet (a labelled counter never incremented) is listed with none."""
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            samples.setdefault(family.name + suffix, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples
