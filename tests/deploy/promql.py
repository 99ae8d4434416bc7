"""Every PromQL expression the deployment ships, and every metric the services declare.

Reusable beyond tests/deploy, e.g. by an integration test that runs a real Prometheus against the
live services and evaluates each expression:

    from tests.deploy.promql import all_expressions, render

    for e in all_expressions():
        query = render(e.expr, {"adapter_alias": "transit-qa"})
        ...  # GET /api/v1/query?query=... ; e.source / e.name say where it came from

Sources: the alert rules (deploy/prometheus/*.yaml, not the promtool tests), the Grafana dashboards
(deploy/grafana/dashboards/*.json: panel targets, annotations, template-variable queries).
Declared metrics come from parsing services/driftloop/core/metrics.py (no import, so no
prometheus_client needed). Standard library + PyYAML only.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus"
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"
METRICS_PY = REPO / "services" / "driftloop" / "core" / "metrics.py"

# Grafana's built-in interval variables, with values that make a valid query on a real Prometheus.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h", "__range_s": "3600",
                    "__interval_ms": "30000"}
METRIC_RE = re.compile(r"\b(driftloop_[a-zA-Z0-9_]+)\b")
_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(.+),\s*)?(\w+)\s*\)\s*$")


@dataclass(frozen=True)
class Expr:
    source: str
    """Repository-relative file the expression comes from."""
    name: str
    """The alert or recording rule name; for dashboards 'dashboard uid / panel title / refId'."""
    expr: str
    kind: str
    """'alert', 'record', 'panel', 'annotation' or 'variable'."""


def rule_files() -> list[Path]:
    return sorted(p for p in RULES_DIR.glob("*.y*ml") if p.is_file())


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def rule_expressions(paths: list[Path] | None = None) -> list[Expr]:
    out = []
    for path in paths or rule_files():
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                kind = "alert" if "alert" in rule else "record"
                out.append(Expr(str(path.relative_to(REPO)), rule.get("alert") or rule.get("record"),
                                rule["expr"].strip(), kind))
    return out


def _panels(panels: list[dict]) -> Iterator[dict]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))  # collapsed rows hold their panels


def dashboard_expressions(paths: list[Path] | None = None) -> list[Expr]:
    out = []
    for path in paths or dashboard_files():
        source = str(path.relative_to(REPO))
        dash = json.loads(path.read_text())
        uid = dash.get("uid", path.stem)
        for panel in _panels(dash.get("panels", [])):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    out.append(Expr(source, f"{uid} / {panel.get('title', '')} / {t.get('refId', '')}",
                                    t["expr"], "panel"))
        for a in dash.get("annotations", {}).get("list", []):
            if a.get("expr"):
                out.append(Expr(source, f"{uid} / annotation {a.get('name', '')}", a["expr"], "annotation"))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or v.get("definition", ""))
            m = _LABEL_VALUES_RE.match(q)
            if m:  # label_values(metric, label) is Grafana's; the equivalent PromQL:
                q = f"group by ({m.group(2)}) ({m.group(1) or 'up'})"
            out.append(Expr(source, f"{uid} / variable {v['name']}", q, "variable"))
    return out


def all_expressions() -> list[Expr]:
    return rule_expressions() + dashboard_expressions()


def render(expr: str, variables: dict[str, str] | None = None) -> str:
    """Substitute Grafana variables ($var, ${var}, ${var:fmt}) to get a query Prometheus accepts.
    Dashboard variables default to '.*' when not given (fine inside =~, a no-match inside =)."""
    values = {**GRAFANA_BUILTINS, **(variables or {})}

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, ".*")

    return _VAR_RE.sub(sub, expr)


def metric_names(expr: str) -> set[str]:
    """The driftloop_* metric names an expression uses."""
    return set(METRIC_RE.findall(expr))


def declared_metrics(path: Path = METRICS_PY) -> dict[str, str]:
    """{declared name: kind} for every Counter/Gauge/Histogram/Summary/Info in metrics.py."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "Counter", "Gauge", "Histogram", "Summary", "Info") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out[first.value] = node.func.id
    return out


def exported_series(path: Path = METRICS_PY) -> set[str]:
    """Series names the services expose, as Prometheus scrapes them (``_created`` is disabled)."""
    out = set()
    for name, kind in declared_metrics(path).items():
        if kind == "Counter":
            out.add(name if name.endswith("_total") else f"{name}_total")
        elif kind == "Histogram":
            out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "Summary":
            out |= {name, f"{name}_sum", f"{name}_count"}
        elif kind == "Info":
            out.add(f"{name}_info")
        else:
            out.add(name)
    return out
