"""Ventas customer features (point in time, late events) and the Feast glue over them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from domains.ventas import features as ventas_features
from domains.ventas.features import (
    SCHEMA,
    build_customer_features,
    customer_features_at,
    features_path,
    snapshot_times,
)
from lakehouse import features, storage
from lakehouse.config import get_settings
from lakehouse.duck import DeltaExtensionMissingError

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, so on the weekly snapshot grid
TS = pl.Datetime("us", "UTC")

# order_id, customer_id, order_ts and ingested_at (days from T0), payment, basket, usd, status
ORDERS = [
    (1, 1, -3, -3, "card", 2, 100.0, "completed"),
    (2, 1, -10, -10, "pix", 4, 50.0, "completed"),
    (3, 1, -2, 1, "pix", 1, 70.0, "completed"),  # late: placed before T0, arrives after it
    (4, 1, -1, -1, "card", 3, 30.0, "cancelled"),
    (5, 2, -40, -40, "paypal", 5, 3000.0, "completed"),
]
# customer_id, signup_ts (days from T0)
CUSTOMERS = [(1, -100), (2, -100), (3, -1), (4, 1)]


def day(offset: float) -> datetime:
    return T0 + timedelta(days=offset)


def orders_frame() -> pl.DataFrame:
    rows = [
        {
            "order_id": oid,
            "customer_id": cid,
            "order_ts": day(placed),
            "ingested_at": day(arrived),
            "region": "LATAM",
            "currency": "USD",
            "payment_method": method,
            "basket_size": basket,
            "amount": usd,
            "amount_usd": usd,
            "status": status,
        }
        for oid, cid, placed, arrived, method, basket, usd, status in ORDERS
    ]
    schema = {"order_ts": TS, "ingested_at": TS, "basket_size": pl.Int32}
    return pl.DataFrame(rows).cast(schema)  # type: ignore[arg-type]


def customers_frame() -> pl.DataFrame:
    rows = [{"customer_id": c, "region": "LATAM", "signup_ts": day(s)} for c, s in CUSTOMERS]
    return pl.DataFrame(rows).cast({"signup_ts": TS})


def write_curated() -> None:
    storage.write(orders_frame(), storage.table_path("ventas", "curated", "orders"))
    storage.write(customers_frame(), storage.table_path("ventas", "curated", "customers"))


def at(snapshot: datetime) -> dict[int, dict]:
    df = customer_features_at(orders_frame().lazy(), customers_frame().lazy(), snapshot).collect()
    return {row["customer_id"]: row for row in df.iter_rows(named=True)}


def test_snapshot_excludes_orders_not_yet_ingested() -> None:
    rows = at(T0)
    assert set(rows) == {1, 2, 3}  # customer 4 signs up after T0
    one = rows[1]
    assert one["total_purchases_7d"] == 100.0  # the late 70 USD order is not known yet
    assert one["total_purchases_30d"] == 150.0
    assert one["transaction_count_7d"] == 1  # the cancelled order does not count
    assert one["avg_basket_size_30d"] == 3.0
    assert one["days_since_last_purchase"] == 3
    assert one["preferred_payment_method"] == "card"  # ties broken by the most recent use
    assert one["is_premium_customer"] == 0
    two = rows[2]
    assert (two["total_purchases_7d"], two["transaction_count_7d"]) == (0.0, 0)
    assert two["days_since_last_purchase"] == 40
    assert two["is_premium_customer"] == 1
    three = rows[3]
    assert three["total_purchases_30d"] == 0.0
    assert three["avg_basket_size_30d"] is None
    assert three["days_since_last_purchase"] is None
    assert three["preferred_payment_method"] is None


def test_snapshot_includes_late_order_once_ingested() -> None:
    one = at(day(7))[1]
    assert one["total_purchases_7d"] == 0.0
    assert one["total_purchases_30d"] == 220.0
    assert one["avg_basket_size_30d"] == (2 + 4 + 1) / 3
    assert one["days_since_last_purchase"] == 9
    assert one["preferred_payment_method"] == "pix"


def test_snapshot_grid_is_weekly_mondays_then_now() -> None:
    orders = orders_frame()
    times = snapshot_times(orders.lazy(), 7)
    assert times[0] == datetime(2026, 1, 26, tzinfo=UTC)
    now = orders["ingested_at"].max()
    assert times[-1] == now  # the last snapshot is what is known at the newest ingestion
    assert all(t.weekday() == 0 and t.hour == 0 for t in times[:-1])
    assert all(t < now for t in times[:-1])
    assert len(times) == 7


def test_build_writes_delta_table_idempotently(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ventas_features, "SNAPSHOTS_PER_BATCH", 3)  # several batches of snapshots
    write_curated()
    rows = build_customer_features(7)
    assert rows == 2 * 7 + 2 + 1  # customers 1-2 every week, 3 from T0, 4 from T0 + 7 days
    assert build_customer_features(7) == rows
    df = storage.read(features_path())
    assert dict(df.schema) == SCHEMA
    assert df.height == rows
    assert df.select("event_timestamp", "customer_id").is_unique().all()  # one row per snapshot
    assert str(features_path()).startswith(str(data_dir))
    assert not list((data_dir / "tmp").iterdir())  # the spilled batches are gone


def test_feast_point_in_time_and_online(data_dir: Path) -> None:
    write_curated()
    build_customer_features(7)

    registered = features.apply()
    assert "feature_view:ventas_customer_fv" in registered
    assert "feature_service:churn_v1" in registered
    assert "entity:customer" in registered
    store = features.feature_store()
    assert store.config.registry.path == str(data_dir / "feast" / "registry.db")
    source = store.get_feature_view("ventas_customer_fv").batch_source
    assert source.path == str(features_path().resolve())

    entity_df = pd.DataFrame(
        {
            "customer_id": [1, 1, 3, 2],
            "event_timestamp": [
                day(0.5),  # sees the T0 snapshot: late order unknown
                day(7.5),  # sees the last snapshot (the newest ingestion): late order known
                day(-10),  # before customer 3 signed up
                day(-400),  # before any snapshot
            ],
            "label": [0, 1, 0, 1],
        }
    )
    got = features.historical_features("churn_v1", entity_df)
    got = got.set_index(["customer_id", "event_timestamp"])
    early = got.loc[(1, pd.Timestamp(day(0.5)))]
    assert early["total_purchases_7d"] == 100.0
    assert early["total_purchases_30d"] == 150.0
    assert early["preferred_payment_method"] == "card"
    late = got.loc[(1, pd.Timestamp(day(7.5)))]
    now = at(orders_frame()["ingested_at"].max())[1]
    assert late["total_purchases_30d"] == now["total_purchases_30d"] == 220.0
    assert late["days_since_last_purchase"] == now["days_since_last_purchase"]
    assert late["label"] == 1
    assert math.isnan(got.loc[(3, pd.Timestamp(day(-10)))]["total_purchases_30d"])
    assert math.isnan(got.loc[(2, pd.Timestamp(day(-400)))]["total_purchases_30d"])

    intervals = features.materialize(views=["ventas_customer_fv"])
    assert set(intervals) == {"ventas_customer_fv"}
    online = features.online_features("churn_v1", [1, 2, 99])
    assert online["customer_id"] == [1, 2, 99]
    assert online["total_purchases_30d"] == [220.0, 0.0, None]
    assert online["preferred_payment_method"] == ["pix", "paypal", None]
    assert online["is_premium_customer"] == [0, 1, None]
    assert (get_settings().feast_dir / "online_store.db").exists()

    again = features.materialize(incremental=True, views=["ventas_customer_fv"])
    assert again["ventas_customer_fv"][0] == intervals["ventas_customer_fv"][1]
    with pytest.raises(features.FeatureStoreError, match="no online feature view"):
        features.materialize(views=["ventas_nope_fv"])


def test_training_rows_before_the_feature_table_exists_say_how_to_build_it(data_dir: Path) -> None:
    features.apply()
    entity_df = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0]})
    with pytest.raises(storage.TableNotFoundError, match="build the feature table"):
        features.historical_features("churn_v1", entity_df)
    with pytest.raises(features.FeatureStoreError, match="apply"):
        features.historical_features("churn_v9", entity_df)


def test_extension_download_attempt_fails_with_the_fix() -> None:
    fix = pytest.raises(DeltaExtensionMissingError, match="duckdb-ext-delta")
    with fix, features._offline_errors():
        raise duckdb.IOException('Failed to download extension "delta" at URL "http://..."')
