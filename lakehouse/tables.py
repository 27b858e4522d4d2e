"""Tables by name for people and notebooks: `ventas.daily_revenue` (a gold product) or
`ventas.curated.orders`, with Delta history and time travel."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse import storage
from lakehouse.config import LAYERS


class TableNameError(ValueError):
    """A table name that does not resolve to a stored Delta table."""


def resolve(name: str) -> Path:
    """Path of `domain.table` (gold) or `domain.layer.table`, with an error listing options."""
    parts = name.split(".")
    if len(parts) == 2:
        domain, layer, table = parts[0], "gold", parts[1]
    elif len(parts) == 3:
        domain, layer, table = parts
    else:
        raise TableNameError(
            f"{name!r} is not a table name; write domain.product (e.g. ventas.daily_revenue) "
            "or domain.layer.table (e.g. ventas.curated.orders)"
        )
    if layer not in LAYERS:
        raise TableNameError(f"unknown layer {layer!r} in {name!r}; use one of {', '.join(LAYERS)}")
    path = storage.table_path(domain, layer, table)
    if not storage.exists(path):
        known = [f"{d}.{lay}.{t}" for d, lay, t, _ in storage.list_tables(domain)]
        hint = f"tables of {domain}: {', '.join(known)}" if known else "run `mesh build` first"
        raise TableNameError(f"no table {name!r} ({path}); {hint}")
    return path


def history(name: str, limit: int | None = None) -> pl.DataFrame:
    """Versions of a table, newest first: version, time, operation, rows written, watermarks."""
    rows: list[dict[str, Any]] = []
    for entry in storage.history(resolve(name), limit):
        metrics = entry.get("operationMetrics") or {}
        rows.append(
            {
                "version": entry["version"],
                "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000).astimezone(),
                "operation": entry.get("operation"),
                "rows_added": metrics.get("num_added_rows")
                or metrics.get("num_target_rows_inserted"),
                "rows_updated": metrics.get("num_target_rows_updated"),
                "run_at": entry.get("run_at"),
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def read(
    name: str, version: int | None = None, as_of: datetime | str | None = None
) -> pl.DataFrame:
    """A table as it is now, at a version, or as of a timestamp (Delta time travel)."""
    if version is not None and as_of is not None:
        raise TableNameError("give a version or a timestamp, not both")
    path = resolve(name)
    if version is not None:
        current = storage.version(path)
        if version < 0 or (current is not None and version > current):
            raise TableNameError(
                f"{name} has versions 0..{current}; version {version} does not exist"
            )
    when = as_of.isoformat() if isinstance(as_of, datetime) else as_of
    try:
        return storage.read(path, version if version is not None else when)
    except Exception as exc:  # deltalake raises for timestamps before the first commit
        if when is not None:
            raise TableNameError(f"{name} has no version as of {when}: {exc}") from exc
        raise
