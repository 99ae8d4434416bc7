"""The committed generated code must match what protos/ generates now."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "services" / "driftloop" / "v1"


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "tools" / "gen_protos.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    fresh = tmp_path / "driftloop" / "v1"
    fresh_files = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file())
    assert fresh_files == committed, "generated file set differs: run `make protos`"
    _, mismatch, errors = filecmp.cmpfiles(fresh, GENERATED, fresh_files, shallow=False)
    assert not mismatch and not errors, f"stale generated code {mismatch or errors}: run `make protos`"


def test_generated_modules_import() -> None:
    from driftloop.v1 import events_pb2, inference_pb2, inference_pb2_grpc

    assert events_pb2.PredictionEvent.DESCRIPTOR.full_name == "driftloop.v1.PredictionEvent"
    assert inference_pb2.DESCRIPTOR.services_by_name["Inference"].methods_by_name["GenerateStream"]
    assert hasattr(inference_pb2_grpc, "AdapterAdminServicer")
