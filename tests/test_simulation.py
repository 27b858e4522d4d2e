"""The synthetic marketplace: deterministic, referentially consistent, dirty on purpose."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lakehouse import storage
from lakehouse.config import reset_settings
from lakehouse.simulation import WorldExistsError, generate
from lakehouse.simulation.dirty import UNKNOWN_ID_OFFSET
from lakehouse.simulation.generator import (
    SIM_DAY_KEY,
    NoWorldError,
    _restore_unsaved_commits,
    injections_path,
    world_dir,
    world_info,
)
from lakehouse.simulation.scales import get_scale
from lakehouse.simulation.sources import SPECS
from lakehouse.simulation.world import World


def _use(root: Path) -> None:
    os.environ["MESH_DATA_DIR"] = str(root)
    reset_settings()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One tiny world shared by the read-only tests of this module."""
    old = os.environ.get("MESH_DATA_DIR")
    root = tmp_path_factory.mktemp("world")
    _use(root)
    generate("tiny", seed=7)
    yield root
    if old is None:
        os.environ.pop("MESH_DATA_DIR", None)
    else:
        os.environ["MESH_DATA_DIR"] = old
    reset_settings()


def raw(domain: str, table: str) -> pl.DataFrame:
    """A raw table in a canonical row order (Delta tables are unordered sets of files)."""
    df = storage.read(storage.table_path(domain, "raw", table))
    return df.sort(df.columns)


def test_every_domain_gets_its_raw_tables_with_ingestion_metadata(world: Path) -> None:
    _use(world)
    for spec in SPECS.values():
        df = raw(spec.domain, spec.name)
        assert df.height > 0, spec.name
        assert {"ingested_at", "batch_id"} <= set(df.columns)
        assert df["ingested_at"].null_count() == 0
        assert df["batch_id"].str.starts_with(f"{spec.domain}.{spec.name}-").all()


def test_same_seed_same_tables_other_seed_differs(world: Path, tmp_path: Path) -> None:
    _use(tmp_path / "again")
    generate("tiny", seed=7)
    for table in ("orders", "order_lines", "customers"):
        again = raw("ventas", table)
        _use(world)
        first = raw("ventas", table)
        _use(tmp_path / "again")
        assert first.equals(again), table
    _use(tmp_path / "other")
    generate("tiny", seed=8)
    other = raw("ventas", "orders")
    _use(world)
    assert not other.equals(raw("ventas", "orders"))


def _injected(kind: str, domain: str, table: str) -> set[str]:
    log = storage.read(injections_path())
    return set(
        log.filter(
            (pl.col("kind") == kind) & (pl.col("domain") == domain) & (pl.col("table") == table)
        )["record_key"].to_list()
    )


def test_references_resolve_except_injected_orphans(world: Path) -> None:
    _use(world)
    customers = set(raw("ventas", "customers")["customer_id"])
    products = set(raw("producto", "products")["product_id"])
    campaigns = set(raw("marketing", "campaigns")["campaign_id"])
    orders = raw("ventas", "orders")
    order_ids = set(orders["order_id"])
    checks = [
        ("ventas", "orders", "order_id", "customer_id", customers),
        ("ventas", "order_lines", "line_id", "product_id", products),
        ("logistica", "shipments", "shipment_id", "order_id", order_ids),
        ("finanzas", "payments", "payment_id", "order_id", order_ids),
        ("ventas", "refunds", "refund_id", "order_id", order_ids),
        ("marketing", "campaign_events", "event_id", "campaign_id", campaigns),
        ("producto", "reviews", "review_id", "product_id", products),
    ]
    for domain, table, key, fk, universe in checks:
        df = raw(domain, table).filter(pl.col(fk).is_not_null())
        orphans = df.filter(~pl.col(fk).is_in(list(universe)))
        assert orphans.height > 0 or table == "refunds", f"{table}: no orphans were injected"
        injected = orphans.filter(pl.col(fk) >= UNKNOWN_ID_OFFSET)
        assert set(injected[key].cast(pl.String)) == _injected("unknown_foreign_key", domain, table)
        # any other orphan's parent is a late record the source has not delivered yet
        waiting = orphans.filter(pl.col(fk) < UNKNOWN_ID_OFFSET)
        assert waiting.height <= 0.01 * df.height, table
        assert (waiting["ingested_at"] >= df["ingested_at"].max() - timedelta(days=8)).all()
    # the world is coherent: region and currency of an order match its customer
    cust = (
        raw("ventas", "customers").unique("customer_id").select("customer_id", cust_region="region")
    )
    joined = orders.join(cust, on="customer_id")
    assert (joined["region"] == joined["cust_region"]).mean() > 0.99


def test_dirty_share_and_every_injected_kind_is_visible(world: Path) -> None:
    _use(world)
    log = storage.read(injections_path())
    assert set(log["kind"]) == {
        "duplicate", "null_required", "negative_amount", "late_arrival",
        "unknown_foreign_key", "malformed_value",
    }  # fmt: skip
    orders = raw("ventas", "orders")
    share = log.filter(pl.col("table") == "orders").height / orders.height
    assert 0.015 < share < 0.06, share
    negative = _injected("negative_amount", "ventas", "orders")
    assert set(orders.filter(pl.col("amount") < 0)["order_id"].cast(pl.String)) == negative
    nulls = _injected("null_required", "ventas", "orders")
    null_rows = orders.filter(pl.col("customer_id").is_null() | pl.col("amount").is_null())
    assert set(null_rows["order_id"].cast(pl.String)) == nulls
    dup_ids = orders.group_by("order_id").len().filter(pl.col("len") > 1)["order_id"]
    assert set(dup_ids.cast(pl.String)) == _injected("duplicate", "ventas", "orders")
    first_arrival = orders.group_by("order_id").agg(
        delay=(pl.col("ingested_at") - pl.col("order_ts")).min()
    )
    late = first_arrival.filter(pl.col("delay") > pl.duration(days=2, hours=2))
    assert set(late["order_id"].cast(pl.String)) == _injected("late_arrival", "ventas", "orders")
    bad_ccy = orders.filter(~pl.col("currency").is_in(["USD", "EUR", "BRL", "MXN"]))
    assert set(bad_ccy["order_id"].cast(pl.String)) == _injected(
        "malformed_value", "ventas", "orders"
    )


def test_clean_world_has_no_dirty_records(data_dir: Path) -> None:
    generate("tiny", seed=3, dirty_share=0.0)
    assert not storage.exists(injections_path())
    orders = raw("ventas", "orders")
    assert orders["order_id"].n_unique() == orders.height
    assert (orders["amount"] >= 0).all()


@pytest.mark.parametrize("cause", ["late", "ret", "fail", "email", "shock"])
def test_each_cross_domain_cause_raises_churn(cause: str) -> None:
    """Half the customers get a bad experience every day; they disengage far more often."""
    w = World(get_scale("small"), seed=11, start=date(2026, 1, 1), dirty_share=0.0)
    w.populate()
    n = len(w.c["z"])
    for _ in range(30):
        hit = np.arange(len(w.c["z"])) < n // 2  # signups append customers after index n
        if cause == "shock":
            w.g["shock"][:] = 0.0
            w.c["fav_cat"][hit] = 0
            w.c["fav_cat"][~hit] = 1
            w.g["shock"][0] = 0.15  # a 16 % price rise on the favourite category
        else:
            w.c[cause][hit] = 12.0 if cause == "email" else 2.0
        w.step()
    at_risk = w.c["risk_day"][:n] >= 0
    exposed, control = at_risk[: n // 2].mean(), at_risk[n // 2 :].mean()
    assert exposed > 2 * control, (cause, exposed, control)


def test_disengaged_customers_stop_buying(world: Path) -> None:
    _use(world)
    orders = raw("ventas", "orders")
    end = orders["order_ts"].max()
    last = orders.group_by("customer_id").agg(pl.col("order_ts").max().alias("last"))
    gone = last.filter(pl.col("last") < end - timedelta(days=21))
    assert 0.03 < gone.height / last.height < 0.6


def test_days_appends_new_data_and_keeps_history(data_dir: Path) -> None:
    generate("tiny", seed=5)
    path = storage.table_path("ventas", "raw", "orders")
    before = raw("ventas", "orders")
    version = storage.version(path)
    end = world_info()["end"]
    result = generate(days=3)
    assert result.days == 3
    assert world_info()["end"] > end
    after = raw("ventas", "orders")
    assert storage.version(path) > version
    assert after.height > before.height
    # append-only: every earlier row is still there, unchanged
    assert before.join(after, on=before.columns, how="anti", nulls_equal=True).height == 0
    assert after["order_ts"].max() > before["order_ts"].max()


def test_existing_world_is_protected_and_bad_arguments_are_explained(data_dir: Path) -> None:
    with pytest.raises(NoWorldError, match="mesh generate --scale"):
        generate(days=2)
    generate("tiny", seed=1)
    path = storage.table_path("ventas", "raw", "orders")
    version = storage.version(path)
    with pytest.raises(WorldExistsError, match=r"--days N.*--force"):
        generate("tiny", seed=1)
    with pytest.raises(ValueError, match="differs from the stored world"):
        generate("small", days=1)
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        generate("huge", force=True)
    with pytest.raises(ValueError, match="at least 1"):
        generate(days=0)
    assert storage.version(path) == version  # nothing stored was touched


def test_an_interrupted_append_is_rolled_back_before_resuming(data_dir: Path) -> None:
    generate("tiny", seed=9)
    path = storage.table_path("ventas", "raw", "orders")
    good = raw("ventas", "orders")
    day = int(world_info()["day"])  # type: ignore[call-overload]
    # a killed run wrote one table's next chunk but never saved the world
    storage.write(good.head(5), path, metadata={SIM_DAY_KEY: day + 3})
    assert raw("ventas", "orders").height == good.height + 5
    restored = _restore_unsaved_commits(World.load(world_dir(), get_scale("tiny")))
    assert restored == [path]
    assert raw("ventas", "orders").equals(good)
    generate(days=2)  # resumes cleanly on top of the restored version
    assert raw("ventas", "orders").height > good.height
