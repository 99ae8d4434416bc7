"""Every PromQL expression the deployment ships, and what each needs to return data.

Reusable beyond tests/deploy, e.g. by the integration test that runs a real Prometheus against the
live services and evaluates each expression (tests/integration/deploy/test_prometheus_live.py):

    from tests.deploy.promql import all_expressions, data_operands, render

    for e in all_expressions():
        query = render(e.expr, {"adapter_alias": "transit-qa"})
        for operand in data_operands(query):  # an alert's condition without its threshold
            ...  # GET /api/v1/query?query=... ; e.source / e.name say where it came from

Sources: the alert rules (deploy/prometheus/*.yaml, not the promtool tests), the Grafana dashboards
(deploy/grafana/dashboards/*.json: panel targets, annotations, template-variable queries). PromQL is
parsed with promql-parser (the Rust parser's Python bindings); where the files are:
tests/deploy/paths.py; the metrics the services declare: tests/deploy/declared.py.

The Argo Rollouts AnalysisTemplates (deploy/argo/) are apart: their queries only become PromQL once
Argo has put in the run's arguments (``{{args.name}}``), so they are read by
``analysis_expressions()`` and filled in by ``render_args()``, not listed by ``all_expressions()``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import yaml

from tests.deploy.paths import REPO, analysis_template_files, dashboard_files, rule_files

# Grafana's built-in interval variables, with values that make a valid query on a real Prometheus.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "30s", "__range": "1h", "__range_s": "3600",
                    "__interval_ms": "30000"}
METRIC_RE = re.compile(r"\b(driftloop_[a-zA-Z0-9_]+)\b")
_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(.+),\s*)?(\w+)\s*\)\s*$")
ARG_RE = re.compile(r"\{\{\s*args\.([\w-]+)\s*\}\}")


@dataclass(frozen=True)
class Expr:
    source: str
    """Repository-relative file the expression comes from."""
    name: str
    """The alert or recording rule name; for dashboards 'dashboard uid / panel title / refId'."""
    expr: str
    kind: str
    """'alert', 'record', 'panel', 'annotation', 'variable' or 'analysis'."""


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


def analysis_expressions(paths: list[Path] | None = None) -> list[Expr]:
    """The Prometheus queries of the AnalysisTemplates, arguments not filled in (see render_args)."""
    out = []
    for path in paths or analysis_template_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
                continue
            for metric in doc["spec"]["metrics"]:
                prom = metric.get("provider", {}).get("prometheus")
                if prom:
                    out.append(Expr(str(path.relative_to(REPO)), f"{doc['metadata']['name']} / {metric['name']}",
                                    prom["query"].strip(), "analysis"))
    return out


def render_args(text: str, args: dict[str, str]) -> str:
    """Argo's ``{{args.name}}`` substitution; an argument without a value is an error (Argo refuses
    to start such a run too)."""

    def sub(m: re.Match) -> str:
        if m.group(1) not in args:
            raise KeyError(f"argument {m.group(1)!r} has no value")
        return args[m.group(1)]

    return ARG_RE.sub(sub, text)


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


# -- what an expression needs to return data ---------------------------------------------------------

SET_OPERATORS = ("and", "or", "unless")
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
ABSENT = ("absent", "absent_over_time")


def data_operands(expr: str) -> list[str]:
    """The sub-expressions that must each return data for ``expr`` to be able to: what a live check
    evaluates to prove that the series an expression uses exist (each as promql-parser prints it).

    An alert's expression is normally empty (``rate(x[5m]) > 0.1`` is empty until it fires), and so
    are annotation and filter expressions; what must exist are the series under the condition. So,
    walking the parsed expression from its top-level operator down:

    - ``a > b`` (any comparison, with ``bool``, ``on``/``ignoring``, ``group_left``/``group_right``):
      both sides, except a side that is a number literal (the threshold);
    - ``a and b``: both sides (the result is their intersection);
    - ``a or b``: both sides (each arm uses series of its own, and each must exist);
    - ``a unless b``: only ``a``. ``b`` removes series and is normally empty (the idiom
      ``x unless x offset 15m`` catches a counter's first appearance); it stays covered by the whole
      expression being a valid query;
    - ``absent(x)`` / ``absent_over_time(x[d])``: ``x`` (an instant selector for the range one);
      absent() returns data exactly when ``x`` has none, so the check is that ``x`` has data.

    Anything else (a selector, a function or aggregation, arithmetic such as a ratio) is returned
    whole, without enclosing parentheses: arithmetic is not a condition, its result is what a panel
    shows. Operators inside function calls and aggregations are not split.
    """
    return [str(node) for node in _operands(promql_parser.parse(expr))]


def _operands(node: promql_parser.Expr) -> list[promql_parser.Expr]:
    node = _unwrap(node)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op)
        if op == "unless":
            return _operands(node.lhs)
        if op in SET_OPERATORS or op in COMPARISONS:
            return [x for side in (node.lhs, node.rhs) if not _is_number(side) for x in _operands(side)]
    if isinstance(node, promql_parser.Call) and node.func.name in ABSENT:
        inner = node.args[0]
        if isinstance(inner, promql_parser.MatrixSelector):
            inner = inner.vector_selector
        return _operands(inner)
    return [node]


def _unwrap(node: promql_parser.Expr) -> promql_parser.Expr:
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def _is_number(node: promql_parser.Expr) -> bool:
    return isinstance(_unwrap(node), promql_parser.NumberLiteral)


def is_scalar_literal(expr: str) -> bool:
    return _is_number(promql_parser.parse(expr))
