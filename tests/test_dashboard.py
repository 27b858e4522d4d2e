from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.overview import format_duration, format_percent, mesh_metrics, table_overview
from lakehouse import storage
from lakehouse.config import PROJECT_ROOT, get_settings, reset_settings
from lakehouse.registry import load_registry

DASHBOARD = PROJECT_ROOT / "app" / "dashboard.py"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Each test sees its own data dir, not what an earlier test's run cached."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def lakehouse(data_dir: Path) -> Path:
    """Three real Delta tables: ventas raw (two commits) and gold, logistica curated."""
    settings = get_settings()
    orders = settings.table_path("ventas", "raw", "orders")
    storage.write(pl.DataFrame({"order_id": ["o1", "o2"], "amount": [10.0, 20.0]}), orders)
    storage.write(pl.DataFrame({"order_id": ["o3"], "amount": [5.0]}), orders)
    storage.write(
        pl.DataFrame({"date": [date(2024, 1, 15)], "region": ["LATAM"], "revenue_net": [1.0]}),
        settings.table_path("ventas", "gold", "daily_revenue"),
    )
    storage.write(
        pl.DataFrame({"shipment_id": [f"s{i}" for i in range(5)]}),
        settings.table_path("logistica", "curated", "shipments"),
    )
    return data_dir


def run_dashboard() -> AppTest:
    return AppTest.from_file(str(DASHBOARD), default_timeout=60).run()


def test_table_overview_lists_tables_in_layer_order(lakehouse: Path) -> None:
    tables = table_overview()

    assert tables.select("domain", "layer", "table", "version", "rows").rows() == [
        ("logistica", "curated", "shipments", 0, 5),
        ("ventas", "raw", "orders", 1, 3),
        ("ventas", "gold", "daily_revenue", 0, 1),
    ]
    assert tables["last_commit"].dtype == pl.Datetime("ms", "UTC")
    assert (datetime.now(UTC) - tables["last_commit"].max()).total_seconds() < 3600
    assert table_overview("logistica").height == 1


def test_mesh_metrics_count_domains_products_tables_and_rows(lakehouse: Path) -> None:
    registry = load_registry()

    assert mesh_metrics(registry, table_overview()) == {
        "domains": len(registry),
        "products": len(registry.products()),
        "tables": 3,
        "rows": 9,
    }


def test_formats() -> None:
    assert format_duration(load_registry()["ventas"].slos.freshness) == "20 min"
    assert format_percent(0.999) == "99.9%"


def test_dashboard_shows_every_domain_and_its_tables(lakehouse: Path) -> None:
    at = run_dashboard()

    assert not at.exception
    assert not at.info
    assert [h.value for h in at.header] == [d.name for d in load_registry()]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tables"] == "3"
    assert metrics["Rows"] == "9"
    shown = [row for frame in at.dataframe for row in frame.value["table"]]
    assert sorted(shown) == ["daily_revenue", "orders", "shipments"]
    ventas = next(frame.value for frame in at.dataframe if "orders" in set(frame.value["table"]))
    assert list(ventas["layer"]) == ["raw", "gold"]
    assert list(ventas["rows"]) == [3, 1]


def test_dashboard_without_data_tells_to_run_mesh_build(data_dir: Path) -> None:
    at = run_dashboard()

    assert not at.exception
    assert len(at.info) == 1
    assert "mesh build" in at.info[0].value
    assert not at.dataframe
    assert len(at.header) == len(load_registry())


def test_dashboard_names_a_broken_domain_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "domains" / "ventas"
    broken.mkdir(parents=True)
    (broken / "domain.yml").write_text("name: ventas\nowner: nobody\n", encoding="utf-8")
    monkeypatch.setenv("MESH_DOMAINS_DIR", str(broken.parent))
    reset_settings()

    at = run_dashboard()

    assert not at.exception
    assert len(at.error) == 1
    assert "domain.yml" in at.error[0].value
    assert not at.header


def test_dependency_graph_has_an_edge_per_declared_dependency() -> None:
    from app.overview import dependency_dot
    from lakehouse.registry import load_registry

    registry = load_registry()
    dot = dependency_dot(registry)
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(edges) == sum(len(d.dependencies) for d in registry)
    assert '"producto" -> "ventas" [label="catalog"];' in dot
