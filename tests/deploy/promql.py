"""Every PromQL expression the deployment ships, and every metric the services declare.

Reusable beyond tests/deploy, e.g. by the integration test that runs a real Prometheus against the
live services and evaluates each expression (tests/integration/deploy/test_prometheus_live.py):

    from tests.deploy.promql import all_expressions, data_operands, render

    for e in all_expressions():
        query = render(e.expr, {"adapter_alias": "transit-qa"})
        for operand in data_operands(query):  # an alert's condition without its threshold
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


# -- what an expression needs to return data ---------------------------------------------------------

_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_PRECEDENCE = {"or": 0, "and": 1, "unless": 1, **{op: 2 for op in _COMPARISONS}}
_IDENT_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER_RE = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+|[Ii]nf|[Nn]a[Nn])")
_ABSENT_RE = re.compile(r"absent(?:_over_time)?\s*\((.*)\)", re.DOTALL)


def _after_string(expr: str, start: int) -> int:
    """Index just past the string literal opening at ``start`` (backslash escapes, none in `raw`)."""
    quote, end = expr[start], start + 1
    while end < len(expr) and expr[end] != quote:
        end += 2 if expr[end] == "\\" and quote != "`" else 1
    return end + 1


def _top_level_operators(expr: str) -> list[tuple[int, int, str]]:
    """(start, end, operator) of every binary set or comparison operator outside (), [], {} and strings."""
    out: list[tuple[int, int, str]] = []
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i = _after_string(expr, i)
            continue
        if c == "#":  # a comment runs to the end of the line
            end = expr.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            two = expr[i:i + 2]
            if two in _COMPARISONS:
                out.append((i, i + 2, two))
                i += 2
                continue
            if c in "<>":
                out.append((i, i + 1, c))
            elif c.isalpha() or c in "_:":
                word = _IDENT_RE.match(expr, i).group(0)  # type: ignore[union-attr]
                if word in ("or", "and", "unless"):
                    out.append((i, i + len(word), word))
                i += len(word)
                continue
        i += 1
    return out


def _matching_paren(expr: str, start: int) -> int:
    """Index of the ')' closing the '(' at ``start`` (strings skipped)."""
    depth, i = 0, start
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _after_string(expr, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced parentheses in {expr!r}")


def _unwrap(expr: str) -> str:
    """Strip whitespace and parentheses that enclose the whole expression."""
    expr = expr.strip()
    while expr.startswith("(") and _matching_paren(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _skip_modifiers(rhs: str) -> str:
    """Drop what follows a binary operator before its right operand: bool, on(...)/ignoring(...),
    group_left(...)/group_right(...)."""
    rhs = rhs.lstrip()
    while True:
        m = _IDENT_RE.match(rhs)
        word = m.group(0) if m else ""
        if word == "bool":
            rhs = rhs[len(word):].lstrip()
        elif word in ("on", "ignoring", "group_left", "group_right"):
            rest = rhs[len(word):].lstrip()
            if rest.startswith("("):
                rest = rest[_matching_paren(rest, 0) + 1:]
            rhs = rest.lstrip()
        else:
            return rhs


def is_scalar_literal(expr: str) -> bool:
    return _NUMBER_RE.fullmatch(_unwrap(expr)) is not None


def data_operands(expr: str) -> list[str]:
    """The sub-expressions that must each return data for ``expr`` to be able to: what a live check
    evaluates to prove that the series an expression uses exist.

    An alert's expression is normally empty (``rate(x[5m]) > 0.1`` is empty until it fires), and so
    are annotation and filter expressions; what must exist are the series under the condition. So,
    splitting at the top-level operator of lowest precedence (PromQL's: ``or`` < ``and``/``unless``
    < comparisons; left-associative, so at its last occurrence) and recursing into each side:

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
    whole, with enclosing parentheses removed: arithmetic is not a condition, its result is what a
    panel shows. Operators inside parentheses or function calls are not split, except where the
    parentheses enclose a whole operand.
    """
    e = _unwrap(expr)
    ops = _top_level_operators(e)
    if not ops:
        m = _ABSENT_RE.fullmatch(e)
        if m and _matching_paren(e, e.index("(")) == len(e) - 1:
            inner = m.group(1).strip()
            if e.startswith("absent_over_time") and inner.endswith("]"):
                inner = inner[:inner.rindex("[")]
            return data_operands(inner)
        return [e]
    lowest = min(_PRECEDENCE[op] for _, _, op in ops)
    start, end, op = [o for o in ops if _PRECEDENCE[o[2]] == lowest][-1]
    lhs, rhs = e[:start], _skip_modifiers(e[end:])
    if op == "unless":
        return data_operands(lhs)
    return [x for side in (lhs, rhs) if not is_scalar_literal(side) for x in data_operands(side)]
