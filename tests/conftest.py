"""Test-wide fixtures. Real services (broker, engine) start once per test session."""

from __future__ import annotations

import os

# No model hub at run time, in tests either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

# Figures the ML-dependent tests measured (an outcome next to the threshold it must meet), shown in
# the run's summary so every `make test` log carries the margins, not only pass or fail.
_FIGURES: list[str] = []


@pytest.fixture
def figure():
    """``figure(text)`` records one measured figure for the run's summary."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
