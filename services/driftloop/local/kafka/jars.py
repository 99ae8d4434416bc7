"""The broker's jars: fetched from Maven Central through ``tools/kafka/pom.xml`` once per version of
the pom, cached under ``<jars_dir>/<hash of the pom>``."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def ensure_jars(pom: Path, jars_dir: Path) -> Path:
    """Return a folder holding the broker's jars, running Maven once per pom version."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = Path(jars_dir).resolve() / digest
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(f"{digest}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    print(f"fetching Kafka jars with Maven into {target} ...", file=sys.stderr, flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"maven failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    (tmp / ".complete").write_text(digest)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
