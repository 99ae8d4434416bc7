"""Adapter versions as immutable directories: ``<root>/<alias>/<version>/`` holds the adapter
files, ``metadata.json`` (parent, data hash, training, metrics, gate report — written once, before
the directory appears) and ``status.json`` (the append-only history of its status:
candidate → canary → promoted, or rejected / rolled_back)."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from driftloop.core import ids

STATUSES = ("candidate", "awaiting_approval", "canary", "promoted", "rejected", "rolled_back")
STAGING = ".staging"  # beside the versions, on the same filesystem: registering is one rename


def rel_path(alias: str, version: str) -> str:
    """Where a version lives under the registry root, as inference is told it (rollout records)."""
    return f"{alias}/{version}"


@dataclass(frozen=True)
class Version:
    alias: str
    version: str
    path: Path
    metadata: dict
    history: list[dict]

    @property
    def status(self) -> str:
        return self.history[-1]["status"] if self.history else "candidate"

    @property
    def rel_path(self) -> str:
        return rel_path(self.alias, self.version)


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, alias: str, version: str) -> Path:
        return ids.path_in(self.root, alias, version)

    def stage(self, version: str) -> Path:
        """A fresh, empty staging directory for ``version`` (what a crashed run left there is removed)."""
        staging = ids.path_in(self.root / STAGING, version)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def relative(self, path: Path) -> str:
        """``path`` (inside the registry) as inference is told it: relative to the root it shares."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def exists(self, alias: str, version: str) -> bool:
        return (self.path(alias, version) / "metadata.json").exists()

    def register(self, alias: str, version: str, staged: Path, metadata: dict) -> Version:
        """Move a staged adapter directory into place with its metadata; refuses to overwrite."""
        target = self.path(alias, version)
        if target.exists():
            raise FileExistsError(f"{alias}/{version} is already registered; versions are immutable")
        (staged / "metadata.json").write_text(json.dumps({**metadata, "alias": alias, "version": version,
                                                           "registered_at": time.time()}, indent=2))
        (staged / "status.json").write_text(json.dumps([{"status": "candidate", "time": time.time(),
                                                          "reason": "registered"}]))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)  # atomic on one filesystem: the version appears complete or not at all
        return self.get(alias, version)

    def get(self, alias: str, version: str) -> Version:
        p = self.path(alias, version)
        meta = json.loads((p / "metadata.json").read_text())
        history = json.loads((p / "status.json").read_text()) if (p / "status.json").exists() else []
        return Version(alias, version, p, meta, history)

    def set_status(self, alias: str, version: str, status: str, reason: str = "") -> Version:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        v = self.get(alias, version)
        history = [*v.history, {"status": status, "time": time.time(), "reason": reason}]
        tmp = v.path / "status.json.tmp"
        tmp.write_text(json.dumps(history, indent=2))
        os.replace(tmp, v.path / "status.json")
        return self.get(alias, version)

    def versions(self, alias: str = "") -> list[Version]:
        out = []
        # Only names the identifier rules allow (so not .staging, nor anything else put beside them).
        aliases = [alias] if alias else sorted(p.name for p in self.root.iterdir()
                                               if p.is_dir() and ids.ALIAS.ok(p.name))
        for a in aliases:
            d = ids.path_in(self.root, a)
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if ids.VERSION.ok(p.name) and (p / "metadata.json").exists():
                    out.append(self.get(a, p.name))
        return sorted(out, key=lambda v: v.metadata.get("registered_at", 0))

    def serving(self, alias: str) -> Version | None:
        """The version promoted last (and not rolled back since)."""
        promoted = [v for v in self.versions(alias) if v.status == "promoted"]
        return max(promoted, key=lambda v: v.history[-1]["time"]) if promoted else None

