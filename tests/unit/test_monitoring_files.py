"""deploy/prometheus and deploy/grafana: every metric and label the alert rules and the
dashboard use is one the worker or the API exports (read from worker/metrics.py's own
metric objects), the rules pass `promtool check` and their unit tests, and the pieces
agree with each other and with the compose file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.support.monitoring import (
    ALERTS,
    EXTERNAL,
    PROMETHEUS,
    REPO,
    alert_rules,
    all_exprs,
    dashboard_exprs,
    dashboard_panels,
    grouping_labels,
    metric_names,
    selectors,
)
from worker import metrics

REQUIRE_PROMTOOL = os.environ.get("CI") == "true" or bool(
    os.environ.get("INGEST_TEST_REQUIRE_SERVICES")
)
# Prometheus attaches these to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Sample names of a family, by its type (prometheus_client's exposition).
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, of every metric the worker and the API export: the
    metric objects of worker/metrics.py and the API's database gauges."""
    result: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)
        for family in value.describe():
            for suffix in SUFFIXES.get(family.type, ("",)):
                extra = {"le"} if suffix == "_bucket" else set()
                result[family.name + suffix] = labels | extra
    totals = {
        "articles": 3, "ukraine_security": 1, "exact_duplicates": 0, "stories": 2,
        "entries": {"pending": 1}, "feeds": {"healthy": 1}, "subscriptions": {"active": 1},
    }  # fmt: skip
    for family in metrics.DatabaseCollector(lambda: totals).collect():
        for sample in family.samples:
            result.setdefault(sample.name, set()).update(sample.labels)
    return result


def test_the_extractor_reads_the_alert_rules() -> None:
    """A guard on the PromQL reading itself: the alerts name exactly these metrics."""
    names = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    assert names == {
        "ingest_db_feeds", "ingest_db_subscriptions", "ingest_articles_stored_total",
        "ingest_db_entries", "probe_success", "up",
    }  # fmt: skip
    pending = selectors(alert_rules()[3]["expr"])
    assert [s.equalities() for s in pending] == [{"status": "pending"}] * 2
    assert grouping_labels("histogram_quantile(0.9, sum by (task, le) (rate(x[5m])))") == {
        "task",
        "le",
    }


def test_every_metric_named_is_exported() -> None:
    known = exported()
    for expr in all_exprs():
        for name in metric_names(expr):
            assert name in known or name in EXTERNAL, f"{name} (in {expr}) is exported by nothing"


def test_every_label_used_exists_on_its_metric() -> None:
    """Matchers and `by (...)` lists name labels the metric has: a typo never matches."""
    known = exported()
    for expr in all_exprs():
        available = set(TARGET_LABELS)
        for selector in selectors(expr):
            if selector.name in EXTERNAL:
                continue
            labels = known[selector.name] | TARGET_LABELS
            used = {label for label, _, _ in selector.matchers}
            assert used <= labels, f"{expr}: {selector.name} has no label {used - labels}"
            available |= labels
        assert grouping_labels(expr) <= available, expr


def test_every_alert_is_documented_and_complete() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    for rule in alert_rules():
        assert rule["alert"] in operations, f"{rule['alert']} is not in docs/operations.md"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert "for" in rule


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert "gridPos" in panel, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
    assert len(dashboard_exprs()) >= 20
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ingest.yaml").read_text())[
        "providers"
    ]
    services = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]
    mounts = services["grafana"]["volumes"]
    assert any(
        m.startswith("./grafana/ingest-dashboard.json:" + provider["options"]["path"])
        for m in mounts
    )


def test_scrape_config_matches_the_alerts_and_compose() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for expr in all_exprs():
        for selector in selectors(expr):
            for label, op, value in selector.matchers:
                if label == "job" and op == "=":
                    assert value in jobs, f"{expr}: no scrape job {value}"
                elif label == "job" and op == "=~":
                    assert any(re.fullmatch(value, job) for job in jobs), expr
    compose: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    (worker_sd,) = jobs["ingest-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"]
    assert str(worker_sd["port"]) == services["worker"]["environment"]["INGEST_METRICS_PORT"]
    assert jobs["ingest-api"]["static_configs"][0]["targets"] == ["api:8000"]
    relabel = jobs["ingest-health"]["relabel_configs"][-1]
    assert relabel["replacement"].split(":")[0] in services
    for name in ("prometheus", "blackbox", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if REQUIRE_PROMTOOL:
            pytest.fail("promtool is not installed (scripts/test.sh installs Debian's prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yaml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts.test.yaml"],
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool(args: list[str]) -> None:
    """The rules parse, the config loads them, and each alert fires (and only then) in
    the situations alerts.test.yaml sets up."""
    done = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
