"""What a domain pipeline is allowed to touch: its own layers and others' declared gold products."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from lakehouse import duck, storage
from lakehouse.registry import Domain, Registry


class UndeclaredDependencyError(PermissionError):
    """A domain tried to read data it has not declared as a dependency."""


@dataclass
class DomainContext:
    """Storage access for one domain's pipeline run, enforcing the mesh's read rule."""

    domain: Domain
    registry: Registry
    run_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    written: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.domain.name

    def path(self, layer: str, table: str) -> Path:
        """Location of one of this domain's own tables."""
        return storage.table_path(self.name, layer, table)

    def raw(self, table: str) -> pl.LazyFrame:
        """Lazy scan of one of this domain's raw (bronze) tables."""
        return storage.scan(self.path("raw", table))

    def curated(self, table: str) -> pl.LazyFrame:
        """Lazy scan of one of this domain's curated (silver) tables."""
        return storage.scan(self.path("curated", table))

    def product(self, qualified: str) -> pl.LazyFrame:
        """Lazy scan of a gold data product: this domain's own, or a declared dependency."""
        owner, _, name = qualified.partition(".")
        self.registry.product(qualified)  # unknown products fail with a suggestion
        if owner != self.name and qualified not in self.domain.dependencies:
            raise UndeclaredDependencyError(
                f"domain {self.name!r} reads {qualified} without declaring it; add "
                f"'- {qualified}' under dependencies: in {self.domain.file}"
            )
        return storage.scan(storage.table_path(owner, "gold", name))

    def delta_sql_path(self, layer: str, table: str) -> str:
        """A quoted path for DuckDB's delta_scan over one of this domain's tables."""
        path = self.path(layer, table)
        if not storage.exists(path):
            raise storage.TableNotFoundError(path)
        return "'" + str(path).replace("'", "''") + "'"

    def sql(self, query: str) -> pl.DataFrame:
        """Run DuckDB SQL (with delta_scan available, no downloads) and return Polars."""
        with duck.connect() as con:
            return con.sql(query).pl()

    def publish(
        self,
        layer: str,
        table: str,
        df: pl.DataFrame,
        *,
        keys: Sequence[str] | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Write a curated, gold or feature table as one atomic commit and remember its version."""
        if layer not in ("curated", "gold", "features", "quarantine"):
            raise ValueError(f"a pipeline cannot write to layer {layer!r}")
        meta = {"domain": self.name, "run_at": self.run_at.isoformat()}
        path = self.path(layer, table)
        if keys:
            version = storage.merge(df, path, keys, partition_by=partition_by, metadata=meta)
        else:
            version = storage.write(
                df, path, mode="overwrite", partition_by=partition_by, metadata=meta
            )
        self.written[f"{layer}/{table}"] = version
        self.rows[f"{layer}/{table}"] = df.height
        return version
