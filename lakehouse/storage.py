"""Delta Lake I/O every domain uses: paths, atomic appends, merges, versions and time travel."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lakehouse.config import get_settings


class TableNotFoundError(FileNotFoundError):
    """Raised when a Delta table that should exist does not."""

    def __init__(
        self, path: Path, hint: str = "run `mesh build` (or `mesh generate`) first"
    ) -> None:
        super().__init__(f"no Delta table at {path}; {hint}")
        self.path = path


def table_path(domain: str, layer: str, table: str) -> Path:
    """Location of one Delta table under the configured data directory."""
    return get_settings().table_path(domain, layer, table)


def exists(path: Path) -> bool:
    """True when path holds a Delta table."""
    return DeltaTable.is_deltatable(str(path))


def _open(path: Path, version: int | str | datetime | None = None) -> DeltaTable:
    if not exists(path):
        raise TableNotFoundError(path)
    dt = DeltaTable(str(path))
    if version is not None:
        dt.load_as_version(version)
    return dt


def _commit(metadata: Mapping[str, Any] | None) -> CommitProperties | None:
    if not metadata:
        return None
    return CommitProperties(custom_metadata={k: str(v) for k, v in metadata.items()})


def write(
    df: pl.DataFrame,
    path: Path,
    *,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Write a frame as one atomic Delta commit and return the new table version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        df.to_arrow(),
        mode=mode,
        partition_by=list(partition_by) if partition_by else None,
        schema_mode="overwrite" if mode == "overwrite" else None,
        commit_properties=_commit(metadata),
    )
    return DeltaTable(str(path)).version()


def merge(
    df: pl.DataFrame,
    path: Path,
    keys: Sequence[str],
    *,
    on_match: str = "update",
    partition_by: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Upsert rows on keys in one atomic commit (creates the table on first write).

    on_match: "update" replaces matched rows, "ignore" keeps them (insert-only: a resent record
    never overwrites the first arrival), "newer:<col>" updates only when the source's <col> is
    later than the target's.
    """
    if not keys:
        raise ValueError("merge needs at least one key column")
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"merge keys {missing} are not columns of the frame ({df.columns})")
    if df.select(pl.struct(list(keys)).is_duplicated().any()).item():
        raise ValueError(f"merge source has duplicate keys {list(keys)}; deduplicate it first")
    if not exists(path):
        return write(df, path, mode="append", partition_by=partition_by, metadata=metadata)
    predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    merger = DeltaTable(str(path)).merge(
        df.to_arrow(),
        predicate=predicate,
        source_alias="s",
        target_alias="t",
        commit_properties=_commit(metadata),
    )
    if on_match == "update":
        merger = merger.when_matched_update_all()
    elif on_match.startswith("newer:"):
        col = on_match.removeprefix("newer:")
        merger = merger.when_matched_update_all(predicate=f"s.{col} > t.{col}")
    elif on_match != "ignore":
        raise ValueError(f"unknown on_match {on_match!r}; use update, ignore or newer:<column>")
    merger.when_not_matched_insert_all().execute()
    return DeltaTable(str(path)).version()


def latest_metadata(path: Path, key: str) -> str | None:
    """The value of a custom commit-metadata key in the newest commit that carries it."""
    if not exists(path):
        return None
    for entry in DeltaTable(str(path)).history():
        if key in entry:
            return str(entry[key])
    return None


def scan(path: Path, version: int | str | datetime | None = None) -> pl.LazyFrame:
    """Lazy Polars scan of a Delta table, optionally as of a version or timestamp."""
    if not exists(path):
        raise TableNotFoundError(path)
    return pl.scan_delta(str(path), version=version)


def read(
    path: Path,
    version: int | str | datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Read a Delta table (or some columns of it) into Polars."""
    lf = scan(path, version)
    if columns is not None:
        lf = lf.select(list(columns))
    return lf.collect()


def version(path: Path) -> int | None:
    """Current version of a Delta table, or None when it does not exist."""
    return DeltaTable(str(path)).version() if exists(path) else None


def write_stream(
    batches: pa.RecordBatchReader,
    path: Path,
    *,
    mode: Literal["append", "overwrite"] = "overwrite",
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Stream record batches into one atomic Delta commit; the data is never in memory whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        batches,
        mode=mode,
        schema_mode="overwrite" if mode == "overwrite" else None,
        commit_properties=_commit(metadata),
    )
    return DeltaTable(str(path)).version()


@lru_cache(maxsize=256)
def _latest_commit(path: Path, log_mtime_ns: int) -> tuple[int, datetime]:
    latest = DeltaTable(str(path)).history(1)[0]
    return int(latest["version"]), datetime.fromtimestamp(latest["timestamp"] / 1000, tz=UTC)


def latest_commit(path: Path) -> tuple[int, datetime] | None:
    """Version and time of a table's newest commit, or None; cached until its log changes."""
    try:
        mtime = os.stat(path / "_delta_log").st_mtime_ns
    except FileNotFoundError:
        return None
    return _latest_commit(path, mtime)


def row_count(path: Path, version: int | None = None) -> int:
    """Number of rows, from the Delta log's file statistics (no data is read)."""
    dt = _open(path, version)
    actions = pl.DataFrame(dt.get_add_actions(flatten=True))
    if actions.is_empty():
        return 0
    return int(actions["num_records"].sum())


def history(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Commit history, newest first: version, timestamp, operation and custom metadata."""
    return list(_open(path).history(limit))


def list_tables(domain: str | None = None) -> list[tuple[str, str, str, Path]]:
    """Every Delta table under the lakehouse as (domain, layer, table, path), sorted."""
    root = get_settings().lakehouse_dir
    found: list[tuple[str, str, str, Path]] = []
    if not root.exists():
        return found
    for domain_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if domain is not None and domain_dir.name != domain:
            continue
        for layer_dir in sorted(p for p in domain_dir.iterdir() if p.is_dir()):
            for table_dir in sorted(p for p in layer_dir.iterdir() if p.is_dir()):
                if exists(table_dir):
                    found.append((domain_dir.name, layer_dir.name, table_dir.name, table_dir))
    return found
