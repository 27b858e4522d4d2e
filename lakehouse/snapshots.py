"""Point-in-time snapshot plumbing shared by the domains' feature jobs.

A feature table holds one row per entity and snapshot time T on a fixed grid of midnights (UTC)
anchored on a Monday, so weekly grids fall on Mondays and a rerun over a longer history only adds
snapshots. A source row is visible at T when its event happened before T and the row had reached
the lakehouse by T (event < T and ingested_at <= T): a late-arriving row never leaks into an
earlier snapshot. `event_timestamp` and `created_timestamp` are both T, so rebuilds are
byte-identical and Feast's point-in-time join sees exactly what was known at T.

The module holds plumbing only (grid, visibility, batching, exact sums, the write); each domain
keeps its feature logic in its own `features.py`. It imports no domain, so it can move into the
platform (`lakehouse/`) unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa

from lakehouse import lineage, storage
from lakehouse.config import get_settings
from lakehouse.context import DomainContext
from lakehouse.registry import load_registry

TS = pl.Datetime("us", "UTC")
GRID_ANCHOR = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday
KEYS = ("event_timestamp", "created_timestamp")
INGESTED = "ingested_at"
EXACT_DIGITS = 6


def at(ts: datetime) -> pl.Expr:
    """A UTC microsecond timestamp literal."""
    return pl.lit(ts, dtype=TS)


def visible(event: str, snapshot: datetime, ingested: str = INGESTED) -> pl.Expr:
    """True for rows a snapshot at `snapshot` can see: happened before it and already ingested."""
    return (pl.col(event) < at(snapshot)) & (pl.col(ingested) <= at(snapshot))


def since(event: str, snapshot: datetime, days: int) -> pl.Expr:
    """True for events in the `days` before the snapshot (the window [T - days, T))."""
    return pl.col(event) >= at(snapshot - timedelta(days=days))


def known_at(event: str, ingested: str = INGESTED) -> pl.Expr:
    """The first time a row is visible: its ingestion, or just after its event if that is later."""
    return pl.max_horizontal(pl.col(event) + pl.duration(microseconds=1), pl.col(ingested))


def exact_sum(values: pl.Expr, digits: int = EXACT_DIGITS) -> pl.Expr:
    """Sum in fixed point (to 10^-digits): integers add up the same in any order, so a parallel
    aggregation cannot change the last bits of a float sum between reruns."""
    scale = 10**digits
    return (values * scale).round().cast(pl.Int64).sum() / scale


def exact_mean(values: pl.Expr, digits: int = EXACT_DIGITS) -> pl.Expr:
    """Mean in fixed point (see exact_sum): the same bytes on every rerun."""
    return exact_sum(values, digits) / values.count()


def first_seen(frame: pl.LazyFrame, key: str, event: str) -> pl.LazyFrame:
    """When each key first became visible (`first_seen`), from the rows that mention it."""
    return frame.group_by(key).agg(first_seen=known_at(event).min())


def present(first_seen_frame: pl.LazyFrame, key: str, snapshot: datetime) -> pl.LazyFrame:
    """The keys visible at a snapshot, from a `first_seen` frame."""
    return first_seen_frame.filter(pl.col("first_seen") <= at(snapshot)).select(key)


def _check(every_days: int) -> None:
    if every_days < 1:
        raise ValueError(f"snapshot_every_days must be a positive number of days, got {every_days}")


def grid(first: datetime, last: datetime, every_days: int) -> list[datetime]:
    """Grid midnights from the first one after `first` to the first one at or after `last`."""
    _check(every_days)
    step = timedelta(days=every_days)
    k_first = (first - GRID_ANCHOR) // step + 1
    k_last = -((GRID_ANCHOR - last) // step)  # ceiling division
    return [GRID_ANCHOR + k * step for k in range(k_first, max(k_first, k_last) + 1)]


def snapshot_times(
    sources: Iterable[tuple[pl.LazyFrame, str]], every_days: int = 7
) -> list[datetime]:
    """The grid over some (frame, event column) sources, from after the first event up to their
    newest ingestion ("now" for this data), plus a snapshot at that instant itself: the last row
    of every entity is what is known now, so each new day of data adds a snapshot that
    incremental materialization (which runs up to the mesh clock) carries online. An event
    stamped after its own ingestion (a shipment booked ahead) never moves "now" past the newest
    ingestion, which would put the snapshot beyond the mesh clock and out of materialization."""
    _check(every_days)
    firsts, lasts = [], []
    for frame, event in sources:
        bounds = frame.select(
            first=pl.col(event).cast(TS).min(),
            last=pl.col(INGESTED).max(),
        ).collect()
        first, last = bounds.row(0)
        if first is not None:
            firsts.append(first)
            lasts.append(last)
    if not firsts:
        return []
    now = max(lasts)
    return [t for t in grid(min(firsts), now, every_days) if t < now] + [now]


def span(
    frame: pl.LazyFrame, event: str, batch: Sequence[datetime], lookback_days: int
) -> pl.LazyFrame:
    """The rows any snapshot of a batch can see within a lookback, read once for the batch."""
    low = batch[0] - timedelta(days=lookback_days)
    rows = frame.filter(
        (pl.col(event) >= at(low))
        & (pl.col(event) < at(batch[-1]))
        & (pl.col(INGESTED) <= at(batch[-1]))
    )
    return rows.collect().lazy()


def _batches(
    snapshots: Sequence[datetime],
    per_batch: int,
    compute: Callable[[list[datetime]], pl.LazyFrame],
    schema: dict[str, pl.DataType],
    key: str,
) -> Iterator[pl.DataFrame]:
    for i in range(0, len(snapshots), per_batch):
        batch = compute(list(snapshots[i : i + per_batch])).collect()
        yield batch.cast(schema).sort("event_timestamp", key)  # type: ignore[arg-type]


def stamped(snapshot: datetime) -> dict[str, pl.Expr]:
    """The timestamp columns of a row taken at a snapshot (created = event: reruns identical)."""
    return {name: at(snapshot) for name in KEYS}


def context(domain: str) -> DomainContext:
    """Read access for a feature job: own tables, and only the products the domain declares."""
    registry = load_registry()
    return DomainContext(registry[domain], registry)


def optional(ctx: DomainContext, layer: str, table: str, schema: dict) -> pl.LazyFrame:
    """One of the domain's own tables, or an empty frame when the pipeline has not written it
    (e.g. no chargeback has arrived yet)."""
    if storage.exists(ctx.path(layer, table)):
        return ctx.table(f"{layer}.{table}")
    return pl.LazyFrame(schema=schema)


def write(
    run: lineage.LineageRun,
    domain: str,
    table: str,
    snapshots: Sequence[datetime],
    per_batch: int,
    compute: Callable[[list[datetime]], pl.LazyFrame],
    schema: dict[str, pl.DataType],
    key: str,
    every_days: int,
) -> int:
    """Overwrite a feature table in one Delta commit, declared as the step's output; rows.

    Batches of `per_batch` snapshots are computed one at a time and spilled to Parquet under the
    data directory, then streamed into the commit in snapshot order, so memory holds one batch
    rather than the whole table (at `large` a table has ~10x the rows of `medium`). A crash
    before the commit leaves the previous version and only a temporary folder behind.
    """
    path = storage.table_path(domain, "features", table)
    spill = get_settings().data_dir / "tmp"
    spill.mkdir(parents=True, exist_ok=True)
    arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
    with tempfile.TemporaryDirectory(prefix=f"{domain}-{table}-", dir=spill) as folder:
        files, rows = [], 0
        for i, batch in enumerate(_batches(snapshots, per_batch, compute, schema, key)):
            if batch.height:
                files.append(Path(folder) / f"{i:06d}.parquet")
                batch.write_parquet(files[-1])
                rows += batch.height

        def stream() -> Iterator[pa.RecordBatch]:
            for file in files:
                yield from pl.read_parquet(file).to_arrow().to_batches()

        version = storage.write_stream(
            pa.RecordBatchReader.from_batches(arrow_schema, stream()),
            path,
            mode="overwrite",
            metadata={
                "job": f"{domain}.features.{table}",
                "snapshots": len(snapshots),
                "snapshot_every_days": every_days,
                "first_snapshot": snapshots[0].isoformat() if snapshots else "",
                "last_snapshot": snapshots[-1].isoformat() if snapshots else "",
            },
        )
    run.output(lineage.DatasetRef(domain, "features", table), storage.scan(path, version), version)
    return rows
