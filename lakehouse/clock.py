"""The mesh's notion of "now": the newest ingestion time of any curated row.

The lakehouse holds a simulated history, so wall-clock time says nothing about what is known.
Snapshots, materialization windows and freshness are measured against this clock instead.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from lakehouse import storage


def _max_ingested(path: object) -> datetime | None:
    from deltalake import DeltaTable

    actions = pl.DataFrame(DeltaTable(str(path)).get_add_actions(flatten=True))
    column = "max.ingested_at"
    if column in actions.columns and actions.height:
        value = actions[column].max()
        if value is not None:
            return value  # type: ignore[return-value]
    return storage.scan(path).select(pl.col("ingested_at").max()).collect().item()  # type: ignore[arg-type]


def mesh_now() -> datetime | None:
    """Newest `ingested_at` across every curated table (None before the first pipeline run)."""
    newest: datetime | None = None
    for _, layer, _, path in storage.list_tables():
        if layer != "curated" or "ingested_at" not in storage.scan(path).collect_schema():
            continue
        value = _max_ingested(path)
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest
