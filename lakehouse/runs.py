"""A small journal of mesh steps (what ran, when, what it wrote) for `mesh status`."""

from __future__ import annotations

import json
import resource
from datetime import UTC, datetime
from typing import Any

from lakehouse.config import get_settings


def record(step: str, status: str, seconds: float, details: dict[str, Any] | None = None) -> None:
    """Append one step's outcome to data/runs/, with the process's peak RSS so far: the step
    during which it grew is the one that set it (`mesh run` runs every domain in one process)."""
    folder = get_settings().runs_dir
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    entry = {
        "step": step,
        "status": status,
        "finished_at": now.isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,  # KiB on Linux
        "details": details or {},
    }
    name = f"{now:%Y%m%dT%H%M%S%f}-{step.replace(' ', '_')}.json"
    (folder / name).write_text(json.dumps(entry, indent=2, default=str))


def latest() -> dict[str, dict[str, Any]]:
    """The most recent entry of every step."""
    folder = get_settings().runs_dir
    out: dict[str, dict[str, Any]] = {}
    if not folder.exists():
        return out
    for f in sorted(folder.glob("*.json")):
        entry = json.loads(f.read_text())
        out[entry["step"]] = entry
    return out
