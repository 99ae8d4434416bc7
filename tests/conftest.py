"""Test-wide fixtures. Real services (broker, engine) start once per test session."""

from __future__ import annotations

import os

# No model hub at run time, in tests either.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
