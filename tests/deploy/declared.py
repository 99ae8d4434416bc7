"""Every metric the services declare, read from services/driftloop/core/metrics/ by parsing it (no
import, so no prometheus_client needed), and the series Prometheus scrapes from each."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.deploy.paths import METRICS_DIR


def declared_metrics(path: Path = METRICS_DIR) -> dict[str, str]:
    """{declared name: kind} for every Counter/Gauge/Histogram/Summary/Info in the metrics package."""
    out = {}
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    for node in (n for f in files for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "Counter", "Gauge", "Histogram", "Summary", "Info") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out[first.value] = node.func.id
    return out


def exported_series(path: Path = METRICS_DIR) -> set[str]:
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
