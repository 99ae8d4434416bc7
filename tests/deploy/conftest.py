"""Fixtures of the deployment checks: the tools `make deploy-tools` puts into .tools/.

The tests fail (they do not skip) when a tool is missing: `make test` installs them first; run
`make deploy-tools` before calling pytest by hand.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.promql import REPO

TOOLS = {
    "helm": REPO / ".tools" / "bin" / "helm",
    "promtool": REPO / ".tools" / "bin" / "promtool",
    "composecheck": REPO / ".tools" / "bin" / "composecheck",
    "hadolint": REPO / ".tools" / "deploy" / "bin" / "hadolint",
    "kubernetes-validate": REPO / ".tools" / "deploy" / "bin" / "kubernetes-validate",
}


def _tool(name: str) -> Path:
    path = TOOLS[name]
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing: run `make deploy-tools` (make test does)")
    return path


@pytest.fixture(scope="session")
def run():
    """run("helm", "lint", ...) -> CompletedProcess; text output, never raises on exit status."""

    def _run(tool: str, *args: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(_tool(tool)), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)

    return _run
