"""Where the deployment's files are in the repository (for tests/deploy and the live Prometheus test)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "driftloop"
DOCKER = REPO / "docker"
RULES_DIR = REPO / "deploy" / "prometheus"
ALERTS = RULES_DIR / "alerts.yaml"
RUNBOOKS = REPO / "deploy" / "runbooks"
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"
ARGO_DIR = REPO / "deploy" / "argo"
METRICS_DIR = REPO / "services" / "driftloop" / "core" / "metrics"
TOOLS_BIN = REPO / ".tools" / "bin"
DEPLOY_TOOLS_BIN = REPO / ".tools" / "deploy" / "bin"


def rule_files() -> list[Path]:
    """The alert and recording rule files (not the promtool tests under tests/)."""
    return sorted(p for p in RULES_DIR.glob("*.y*ml") if p.is_file())


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def analysis_template_files() -> list[Path]:
    """The Argo Rollouts AnalysisTemplates (deploy/argo/)."""
    return sorted(ARGO_DIR.glob("*.y*ml"))
