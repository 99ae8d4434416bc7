"""Fixtures of the deployment checks: the tools `make deploy-tools` puts into .tools/.

The tests fail (they do not skip) when a tool is missing: `make test` installs them first; run
`make deploy-tools` before calling pytest by hand.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.paths import DEPLOY_TOOLS_BIN, REPO, TOOLS_BIN

TOOLS = {
    "helm": TOOLS_BIN / "helm",
    "promtool": TOOLS_BIN / "promtool",
    "composecheck": TOOLS_BIN / "composecheck",
    "hadolint": DEPLOY_TOOLS_BIN / "hadolint",
    "kubernetes-validate": DEPLOY_TOOLS_BIN / "kubernetes-validate",
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
