"""The domains' pipelines together: contracts hold, dirty data is caught, reruns are
idempotent, late data lands on the right rows, failures are isolated, lineage is emitted."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from openlineage_spec import validate_event

from lakehouse import storage, tables
from lakehouse.config import reset_settings
from lakehouse.context import DomainContext, UndeclaredDependencyError
from lakehouse.contracts import load_contracts
from lakehouse.lineage import read_events
from lakehouse.orchestration import run_pipelines
from lakehouse.quality import validate
from lakehouse.registry import load_registry
from lakehouse.simulation import generate
from lakehouse.simulation.generator import injections_path
from lakehouse.simulation.sources import SPECS

AUDIT = ("calculated_at", "processed_at", "_quarantined_at", "_resolved_at")


def _use(root: Path) -> None:
    os.environ["MESH_DATA_DIR"] = str(root)
    reset_settings()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny world with every pipeline run once (shared, read-only)."""
    old = os.environ.get("MESH_DATA_DIR")
    root = tmp_path_factory.mktemp("pipelines") / "data"
    _use(root)
    generate("tiny", seed=21)
    results = run_pipelines()
    assert [r.status for r in results] == ["ok"] * 5, [(r.domain, r.reason) for r in results]
    yield root
    if old is None:
        os.environ.pop("MESH_DATA_DIR", None)
    else:
        os.environ["MESH_DATA_DIR"] = old
    reset_settings()


def snapshot(layers: tuple[str, ...] = ("curated", "gold")) -> dict[str, pl.DataFrame]:
    """Every table of the given layers, without audit columns, in a canonical order."""
    out = {}
    for domain, layer, table, path in storage.list_tables():
        if layer in layers:
            df = storage.read(path)
            df = df.drop([c for c in AUDIT if c in df.columns])
            out[f"{domain}.{layer}.{table}"] = df.sort(df.columns)
    return out


def versions() -> dict[str, int | None]:
    return {f"{d}.{lay}.{t}": storage.version(p) for d, lay, t, p in storage.list_tables()}


def test_every_product_exists_and_satisfies_its_contract(mesh: Path) -> None:
    _use(mesh)
    contracts = load_contracts()
    assert len(contracts) == 16
    # marketing.churn_risk is built by `mesh score` (tests/test_scoring.py), not by `mesh run`
    assert not storage.exists(storage.table_path("marketing", "gold", "churn_risk"))
    del contracts["marketing.churn_risk"]
    for qualified, contract in contracts.items():
        df = tables.read(qualified)
        assert df.height > 0, qualified
        result = validate(df, contract)
        assert result.failure_share == 0, (qualified, result.rules_failed())


def test_every_injected_dirty_record_is_quarantined_or_repaired(mesh: Path) -> None:
    _use(mesh)
    log = storage.read(injections_path())
    kinds = {"duplicate", "null_required", "negative_amount", "late_arrival"}
    assert set(log["kind"]) >= kinds | {"unknown_foreign_key", "malformed_value"}
    for (domain, table), part in log.group_by("domain", "table"):
        key = SPECS[str(table)].key
        curated = storage.read(storage.table_path(str(domain), "curated", str(table)))
        assert curated[key].n_unique() == curated.height, f"{table}: duplicates reached curated"
        quarantine = storage.table_path(str(domain), "quarantine", str(table))
        q = storage.read(quarantine) if storage.exists(quarantine) else None
        for kind, rows in part.group_by("kind"):
            keys = set(rows["record_key"])
            if kind[0] in ("duplicate", "late_arrival"):  # kept once, at the right place
                found = set(curated[key].cast(pl.String))
                if q is not None:
                    found |= set(q[key].cast(pl.String))
            else:  # rejected, or repaired on the way in (logged with _resolved_at set)
                assert q is not None, table
                found = set(q[key].cast(pl.String))
            assert keys <= found, (domain, table, kind[0], sorted(keys - found)[:5])
    orders_q = storage.read(storage.table_path("ventas", "quarantine", "orders"))
    assert {"_rule", "_reason"} <= set(orders_q.columns)
    assert orders_q["_reason"].null_count() == 0


def test_no_pii_reaches_curated_shared_or_gold(mesh: Path) -> None:
    _use(mesh)
    raw = storage.read(storage.table_path("ventas", "raw", "customers"))
    emails = set(raw["email"].drop_nulls())
    phones = set(raw["phone"].drop_nulls())
    names = set(raw["name"].drop_nulls())
    pii_pattern = re.compile(r"@example\.com|\+\d-555-")
    for _, layer, table, path in storage.list_tables():
        if layer not in ("gold", "curated", "features"):
            continue
        df = storage.read(path)
        assert not {"email", "phone"} & set(df.columns), table
        for col, dtype in df.schema.items():
            if dtype == pl.String:
                values = set(df[col].drop_nulls().unique().to_list())
                assert not values & (emails | phones | names), (table, col)
                assert not any(pii_pattern.search(v) for v in values), (table, col)
    customers = storage.read(storage.table_path("ventas", "curated", "customers"))
    assert customers["email_token"].drop_nulls().str.contains(r"^[0-9a-f]{32}$").all()


def test_rerun_without_new_data_writes_nothing(mesh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(mesh, copy)
    _use(copy)
    before, contents = versions(), snapshot()
    results = run_pipelines()
    assert all(r.status == "ok" and r.rows_in == 0 for r in results)
    assert versions() == before
    after = snapshot()
    assert all(after[k].equals(v) for k, v in contents.items())


def test_new_days_and_late_events_match_a_full_refresh(mesh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(mesh, copy)
    _use(copy)
    revenue_before = tables.read("ventas.daily_revenue")
    generate(days=4)
    results = run_pipelines()
    assert all(r.status == "ok" for r in results)
    assert sum(r.rows_in for r in results) > 0
    incremental = snapshot(("gold",))
    revenue_after = tables.read("ventas.daily_revenue")
    assert revenue_after["date"].max() > revenue_before["date"].max()
    # late rows of the new batches reopened earlier days: those days changed in place
    old_days = revenue_before.select("date", "region", "revenue_gross")
    reopened = old_days.join(revenue_after, on=["date", "region"], suffix="_new").filter(
        pl.col("revenue_gross") != pl.col("revenue_gross_new")
    )
    assert reopened.height > 0
    run_pipelines(full_refresh=True)
    full = snapshot(("gold",))
    for name, df in full.items():
        assert incremental[name].equals(df), name


def test_reading_undeclared_or_private_data_fails_with_the_fix(mesh: Path) -> None:
    _use(mesh)
    registry = load_registry()
    ctx = DomainContext(registry["logistica"], registry)
    with pytest.raises(UndeclaredDependencyError, match=r"add '- marketing.campaign_metrics'"):
        ctx.product("marketing.campaign_metrics")
    with pytest.raises(UndeclaredDependencyError, match="private; read its published product"):
        ctx.table("ventas.curated.orders")
    with pytest.raises(UndeclaredDependencyError, match="private"):
        ctx.table("ventas.raw.orders")
    assert ctx.table("ventas.gold.daily_revenue").collect().height > 0
    assert ctx.table("curated.shipments").collect().height > 0


def test_a_failing_domain_skips_its_consumers_only(mesh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(mesh, copy)
    _use(copy)
    generate(days=1)
    shutil.rmtree(storage.table_path("ventas", "raw", "refunds"))  # a broken source system
    results = {r.domain: r for r in run_pipelines()}
    assert results["producto"].status == "ok"
    assert results["ventas"].status == "failed"
    assert "refunds" in results["ventas"].reason
    for consumer in ("finanzas", "logistica", "marketing"):
        assert results[consumer].status == "skipped"
        assert "upstream domain ventas failed" in results[consumer].reason


def test_a_batch_breaking_its_contract_is_not_published(mesh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(mesh, copy)
    _use(copy)
    registry = load_registry()
    ctx = DomainContext(registry["ventas"], registry)
    path = storage.table_path("ventas", "gold", "daily_revenue")
    version, good = storage.version(path), storage.read(path)
    bad = good.head(10).with_columns(revenue_gross=pl.lit(-1.0))
    assert ctx.publish_product("daily_revenue", bad) is None
    assert storage.version(path) == version
    assert "not published" in ctx.blocked[0] and "daily_revenue" in ctx.blocked[0]
    quarantine = storage.read(storage.table_path("ventas", "quarantine", "daily_revenue"))
    assert quarantine.height == 10
    assert quarantine["_rule"].str.contains("revenue_gross").all()
    mostly_good = pl.concat([good.head(1).with_columns(revenue_gross=pl.lit(-1.0)), good.tail(200)])
    assert ctx.publish_product("daily_revenue", mostly_good) is not None  # 0.5 % < 1 % threshold


def test_lineage_events_validate_and_show_cross_domain_edges(mesh: Path) -> None:
    _use(mesh)
    events = read_events()
    assert events, "no lineage events"
    states: dict[str, list[str]] = {}
    for event in events:
        validate_event(event)
        states.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert all(s == ["START", "COMPLETE"] for s in states.values()), states
    inputs_of: dict[str, set[str]] = {}
    for event in events:
        if event["eventType"] == "COMPLETE":
            names = {i["name"] for i in event.get("inputs", [])}
            inputs_of.setdefault(event["job"]["name"], set()).update(names)
    marketing = set().union(*(v for k, v in inputs_of.items() if k.startswith("marketing.")))
    assert "ventas/gold/customer_transaction_history" in marketing
    assert "producto/gold/catalog" in marketing
    for consumer in ("finanzas", "logistica"):
        read = set().union(*(v for k, v in inputs_of.items() if k.startswith(consumer + ".")))
        assert any(name.startswith("ventas/gold/") for name in read), consumer
    revenue = next(
        e for e in events
        if e["job"]["name"] == "ventas.gold.daily_revenue" and e["eventType"] == "COMPLETE"
    )  # fmt: skip
    output = revenue["outputs"][0]
    assert output["facets"]["version"]["datasetVersion"] == str(
        storage.version(storage.table_path("ventas", "gold", "daily_revenue"))
    )
    lineage = output["facets"]["columnLineage"]["fields"]["revenue_net"]["inputFields"]
    assert {f["name"] for f in lineage} == {"ventas/curated/orders", "ventas/curated/refunds"}


def test_time_travel_by_version_and_timestamp(mesh: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(mesh, copy)
    _use(copy)
    first = tables.read("ventas.daily_revenue", version=0)
    history = tables.history("ventas.daily_revenue")
    generate(days=2)
    run_pipelines()
    assert tables.history("ventas.daily_revenue").height > history.height
    assert tables.read("ventas.daily_revenue", version=0).equals(first)
    stamp = tables.history("ventas.daily_revenue")["timestamp"][-1]
    assert tables.read("ventas.daily_revenue", as_of=stamp).height == first.height
    with pytest.raises(tables.TableNameError, match=r"versions 0\.\."):
        tables.read("ventas.daily_revenue", version=999)
    with pytest.raises(tables.TableNameError, match="tables of ventas"):
        tables.read("ventas.dayly_revenue")


def test_a_first_build_in_small_slices_gives_the_same_tables(
    mesh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(mesh)
    expected = snapshot()
    sliced = tmp_path / "data"
    shutil.copytree(mesh / "simulation", sliced / "simulation")
    for raw in (mesh / "lakehouse").glob("*/raw"):
        shutil.copytree(raw, sliced / "lakehouse" / raw.parent.name / "raw")
    monkeypatch.setenv("MESH_CURATE_CHUNK_ROWS", "1500")
    _use(sliced)
    assert all(r.status == "ok" for r in run_pipelines())
    orders = storage.table_path("ventas", "curated", "orders")
    assert storage.version(orders) >= 2  # several slices, one commit each
    got = snapshot()
    assert got.keys() == expected.keys()
    for name, df in expected.items():
        assert got[name].equals(df), name
