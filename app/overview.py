"""What the dashboard shows, as plain data: domains from the registry and their Delta tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from lakehouse import storage
from lakehouse.config import LAYERS
from lakehouse.registry import Domain, Registry

TABLE_SCHEMA = {
    "domain": pl.String,
    "layer": pl.String,
    "table": pl.String,
    "version": pl.Int64,
    "rows": pl.Int64,
    "last_commit": pl.Datetime("ms", "UTC"),
}


def table_overview(domain: str | None = None) -> pl.DataFrame:
    """One row per Delta table: domain, layer, table, current version, rows, last commit (UTC)."""
    records = []
    for table_domain, layer, table, path in storage.list_tables(domain):
        last = storage.history(path, 1)[0]
        records.append(
            {
                "domain": table_domain,
                "layer": layer,
                "table": table,
                "version": storage.version(path),
                "rows": storage.row_count(path),
                "last_commit": datetime.fromtimestamp(last["timestamp"] / 1000, tz=UTC),
            }
        )
    frame = pl.DataFrame(records, schema=TABLE_SCHEMA)
    layer_rank = pl.col("layer").replace_strict(
        {layer: rank for rank, layer in enumerate(LAYERS)}, default=len(LAYERS)
    )
    return frame.sort("domain", layer_rank, "table")


def mesh_metrics(registry: Registry, tables: pl.DataFrame) -> dict[str, int]:
    """Headline counts of the mesh: domains, data products, Delta tables and their total rows."""
    return {
        "domains": len(registry),
        "products": len(registry.products()),
        "tables": tables.height,
        "rows": int(tables["rows"].sum()),
    }


def format_duration(value: timedelta) -> str:
    """A duration in its largest whole unit, e.g. '20 min', '2 h', '1 d' or '45 s'."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def format_percent(fraction: float) -> str:
    """A fraction as a short percentage, e.g. 0.999 -> '99.9%'."""
    return f"{fraction * 100:.6g}%"


def slo_summary(domain: Domain) -> dict[str, str]:
    """A domain's SLOs as display labels and values."""
    slos = domain.slos
    return {
        "Freshness": format_duration(slos.freshness),
        "Latency p99": format_duration(slos.latency_p99),
        "Availability": format_percent(slos.availability),
        "Completeness": format_percent(slos.completeness),
    }


def dependency_dot(registry: Registry) -> str:
    """Graphviz DOT of the mesh: an arrow from each producing domain to each consumer, labelled
    with the product it reads."""
    lines = ["digraph mesh {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for domain in registry:
        lines.append(f'  "{domain.name}";')
        for dependency in domain.dependencies:
            producer, _, product = dependency.partition(".")
            lines.append(f'  "{producer}" -> "{domain.name}" [label="{product}"];')
    lines.append("}")
    return "\n".join(lines)
