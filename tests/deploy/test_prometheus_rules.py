"""The alert rules: promtool accepts them, every alert is unit-tested both ways, every alert has a
runbook; every dashboard query parses."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.paths import ALERTS, REPO, RULES_DIR, RUNBOOKS
from tests.deploy.promql import all_expressions, dashboard_expressions, data_operands, render, rule_expressions

RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yaml"))
RUNBOOK_BASE = "https://github.com/driftloop/driftloop/blob/main/deploy/runbooks/"
ALERT_RULES = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r]
ALERT_NAMES = [r["alert"] for r in ALERT_RULES]


def test_promtool_check_rules(run):
    out = run("promtool", "check", "rules", str(ALERTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rule_expressions([ALERTS]))} rules found" in out.stdout


def test_promtool_unit_tests(run):
    assert RULE_TESTS
    out = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def _rule_tests() -> list[dict]:
    return [t for f in RULE_TESTS for group in yaml.safe_load(f.read_text())["tests"]
            for t in group.get("alert_rule_test", [])]


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_is_tested_firing_and_silent(alert):
    cases = [t for t in _rule_tests() if t["alertname"] == alert]
    assert any(t.get("exp_alerts") for t in cases), f"no promtool test where {alert} fires"
    assert any(not t.get("exp_alerts") for t in cases), f"no promtool test where {alert} stays silent"


def test_alert_names_are_unique():
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_alert_has_labels_annotations_and_runbook(rule):
    name = rule["alert"]
    assert re.fullmatch(r"Driftloop[A-Z][A-Za-z0-9]+", name)
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["labels"]["component"]
    ann = rule["annotations"]
    assert ann["summary"] and ann["description"]
    assert ann["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    text = (RUNBOOKS / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    for section in ("## What it means", "## How to check", "## What to do"):
        assert section in text, f"{name}.md lacks '{section}'"
    assert f"[{name}]({name}.md)" in (RUNBOOKS / "README.md").read_text()


def test_no_orphan_runbooks():
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALERT_NAMES)


def test_dashboard_queries_parse(run, tmp_path):
    """promtool parses every dashboard query (Grafana variables filled in) as a recording rule."""
    exprs = dashboard_expressions()
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}:check", "expr": render(e.expr, {"adapter_alias": "transit-qa"})}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = run("promtool", "check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in out.stdout


def test_every_operand_parses(run, tmp_path):
    """promtool parses every operand the live check queries (tests/deploy/promql.py: data_operands,
    printed by promql-parser) as a recording rule: what Prometheus will be sent is valid PromQL."""
    operands = sorted({op for e in all_expressions() for op in data_operands(render(e.expr, {"adapter_alias": "a"}))})
    rules = {"groups": [{"name": "operands", "rules": [
        {"record": f"operand:query_{i}:check", "expr": op} for i, op in enumerate(operands)]}]}
    path = tmp_path / "operands.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = run("promtool", "check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(operands)} rules found" in out.stdout


def test_compose_prometheus_config(run):
    out = run("promtool", "check", "config", "--syntax-only", str(REPO / "docker" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
