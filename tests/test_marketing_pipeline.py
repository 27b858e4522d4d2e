"""Marketing pipeline: event curation, attribution, campaign metrics and RFM segments in SQL,
and one run over a generated tiny world (contracts, injected dirt, idempotency, new days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from domains.marketing import pipeline as mkt
from lakehouse import duck, storage
from lakehouse.contracts import contract_for
from lakehouse.orchestration import run_pipelines
from lakehouse.quality import split, validate
from lakehouse.simulation import generate
from lakehouse.simulation.generator import injections_path, world_info

AT = datetime(2026, 7, 1, 3, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")
PRODUCTS = ("campaign_metrics", "customer_segments", "attribution_model")


def sql(query: str, **frames: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The same DuckDB runner as DomainContext.sql, without a context."""
    with duck.connect() as con:
        for name, frame in frames.items():
            con.register(name, frame.collect() if isinstance(frame, pl.LazyFrame) else frame)
        return con.sql(query).pl()


def _ts(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 6, day, hour, tzinfo=UTC)


def _schema(product: str) -> pl.Schema:
    contract = contract_for(f"marketing.{product}")
    return pl.Schema({c.name: c.physical_type for c in contract.columns})


def test_events_are_conformed_repaired_and_checked() -> None:
    raw = pl.LazyFrame(
        {
            "event_id": [1, 2, 3, 4, 5, 6],
            "campaign_id": [1, 1, 1, 1, 9_000_000_001, 1],
            "customer_id": [5, 5, 5, 5, 5, 5],
            "event_type": ["send", "OPEN!", None, "bounce", "click", " Click "],
            "event_ts": [_ts(1)] * 6,
            "order_id": pl.Series([None] * 6, dtype=pl.Int64),
            "ingested_at": [AT] * 6,
        },
        schema_overrides={"event_ts": TS, "ingested_at": TS},
    )
    campaigns = pl.LazyFrame({"campaign_id": [1, 2]})
    prepared = mkt.prepare_events(sql, raw, campaigns).collect()
    assert prepared.schema["event_ts"] == TS
    good, bad = split(prepared, mkt.EVENT_RULES)
    _, repaired = split(good, mkt.EVENT_REPAIRS)
    assert dict(zip(bad["event_id"], bad["_rule"], strict=True)) == {
        3: "not_null:event_type", 4: "valid_event_type", 5: "unknown_campaign",
    }  # fmt: skip
    assert sorted(repaired["event_id"]) == [2, 6]
    assert repaired.filter(pl.col("event_id") == 2)["event_type_raw"].item() == "OPEN!"
    assert dict(zip(good["event_id"], good["event_type"], strict=True)) == {
        1: "send", 2: "open", 6: "click",
    }  # fmt: skip


def _attribute(amount: float, clicks: list[tuple[int, datetime]]) -> pl.DataFrame:
    orders = pl.DataFrame(
        {"order_id": [100], "customer_id": [5], "order_ts": [_ts(20)],
         "order_date": [date(2026, 6, 20)], "amount_usd": [amount]},
        schema_overrides={"order_ts": TS},
    )  # fmt: skip
    frame = pl.DataFrame(
        {"customer_id": [5] * len(clicks), "campaign_id": [c for c, _ in clicks],
         "event_ts": [t for _, t in clicks]},
        schema={"customer_id": pl.Int64, "campaign_id": pl.Int64, "event_ts": TS},
    )  # fmt: skip
    return mkt.attribution(sql, orders, frame, AT)


def test_attribution_credits_last_click_and_splits_linear_per_click() -> None:
    out = _attribute(
        100.0,
        [(1, _ts(14)), (1, _ts(15)), (2, _ts(19)), (3, _ts(12)), (4, _ts(20, 13))],
    )  # campaign 3 is 8 days before the order and 4 after it: neither counts
    assert out.schema == _schema("attribution_model")
    last = out.filter(pl.col("model") == "last_touch")
    assert last.select("campaign_id", "attributed_revenue_usd", "touches").rows() == [(2, 100.0, 1)]
    linear = dict(
        out.filter(pl.col("model") == "linear")
        .select("campaign_id", "attributed_revenue_usd")
        .rows()
    )
    assert linear == {1: 66.67, 2: 33.33}


@pytest.mark.parametrize("amount", [10.0, 0.01, 123.45, 99.99])
def test_attribution_sums_to_the_order_amount_per_model(amount: float) -> None:
    out = _attribute(amount, [(1, _ts(14)), (2, _ts(15)), (3, _ts(16))])
    sums = out.group_by("model").agg(pl.col("attributed_revenue_usd").sum())
    assert sums["attributed_revenue_usd"].to_list() == pytest.approx([amount, amount], abs=1e-9)
    assert (out["attributed_revenue_usd"] >= 0).all()


def test_orders_without_clicks_are_not_attributed() -> None:
    assert _attribute(50.0, [(1, _ts(1))]).is_empty()


def test_campaign_metrics_count_the_funnel_over_sends() -> None:
    campaigns = pl.DataFrame(
        {"campaign_id": [1, 2], "name": ["a", "b"], "channel": ["email", "sms"],
         "target_category": ["books", "toys"], "start_date": [date(2026, 6, 1)] * 2,
         "end_date": [date(2026, 6, 30)] * 2, "budget_usd": [1000.0, 500.0]},
    )  # fmt: skip
    events = pl.DataFrame(
        {"campaign_id": [1] * 7,
         "event_type": ["send", "send", "send", "send", "open", "click", "conversion"],
         "order_id": [None] * 6 + [7]},
        schema_overrides={"order_id": pl.Int64},
    )  # fmt: skip
    attributed = pl.DataFrame(
        {"campaign_id": [1, 1, 1], "model": ["last_touch", "last_touch", "linear"],
         "attributed_revenue_usd": [10.0, 5.5, 99.0]},
    )  # fmt: skip
    out = mkt.campaign_metrics(sql, campaigns, events, attributed, AT)
    assert out.schema == _schema("campaign_metrics")
    first, second = out.sort("campaign_id").iter_rows(named=True)
    assert (first["sends"], first["opens"], first["clicks"], first["conversions"]) == (4, 1, 1, 1)
    assert (first["open_rate"], first["click_rate"], first["conversion_rate"]) == (0.25, 0.25, 0.25)
    assert first["attributed_revenue_usd"] == 15.5
    assert (second["sends"], second["open_rate"], second["attributed_revenue_usd"]) == (0, 0.0, 0.0)


def test_segments_follow_the_documented_rfm_rules() -> None:
    as_of = date(2026, 6, 30)
    day = lambda n: as_of - timedelta(days=n)  # noqa: E731
    rows = (
        [(1, day(d), 300.0) for d in (2, 10, 20, 40, 50)]  # champion: recent, frequent, big
        + [(2, day(d), 50.0) for d in (3, 40)]  # loyal: recent, not top
        + [(3, day(5), 20.0)]  # new: first order 5 days ago
        + [(4, day(35), 80.0), (4, day(45), 80.0)]  # at_risk: 35 days quiet
        + [(5, day(65), 80.0)]  # hibernating: 65 days quiet
        + [(6, day(0), 10.0), (6, day(31), 10.0)]  # loyal: ordered today
    )
    orders = pl.DataFrame(rows, schema=["customer_id", "order_date", "amount_usd"], orient="row")
    customers = pl.DataFrame({"customer_id": [1, 2, 3, 4, 5, 6, 7]})  # 7: cancelled orders only
    events = pl.DataFrame(
        {"customer_id": [1, 1, 1, 8, 2],
         "event_type": ["send", "send", "open", "send", "send"],
         "event_ts": [_ts(29), _ts(25), _ts(29), _ts(20), _ts(1) - timedelta(days=5)]},
        schema_overrides={"event_ts": TS},
    )  # fmt: skip
    out = mkt.customer_segments(sql, orders, customers, events, AT)
    assert out.schema == _schema("customer_segments")
    got = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    segments = {c: r["segment"] for c, r in got.items()}
    assert segments == {
        1: "champion", 2: "loyal", 3: "new", 4: "at_risk", 5: "hibernating", 6: "loyal",
        7: "hibernating", 8: "hibernating",
    }  # fmt: skip
    assert got[1]["recency_days"] == 2 and got[1]["orders_90d"] == 5
    assert got[1]["spend_90d_usd"] == 1500.0
    assert (got[1]["emails_30d"], got[1]["open_rate_30d"]) == (2, 0.5)
    assert got[2]["emails_30d"] == 0 and got[2]["open_rate_30d"] is None  # mail 34 days ago
    assert got[7]["recency_days"] is None and got[8]["orders_90d"] == 0


# ---------------------------------------------------------------- on a generated world
def _read(layer: str, table: str, domain: str = "marketing") -> pl.DataFrame:
    return storage.read(storage.table_path(domain, layer, table))


def _versions() -> dict[str, int | None]:
    return {f"{lay}/{t}": storage.version(p) for _, lay, t, p in storage.list_tables("marketing")}


def _run() -> None:
    runs = {r.domain: r for r in run_pipelines()}
    for name in ("producto", "ventas", "marketing"):
        assert runs[name].status == "ok", runs[name].reason


def _assert_products() -> None:
    for product in PRODUCTS:
        df = _read("gold", product)
        assert df.height > 0, product
        assert df.schema == _schema(product), product
        result = validate(df, contract_for(f"marketing.{product}"))
        assert result.quarantined.is_empty(), (product, result.rules_failed())
    orders = _read("gold", "customer_transaction_history", "ventas")
    attribution = _read("gold", "attribution_model")
    sums = (
        attribution.group_by("order_id", "model")
        .agg(pl.col("attributed_revenue_usd").sum())
        .join(orders.select("order_id", "amount_usd", "status"), on="order_id")
    )
    assert (sums["status"] == "completed").all()
    assert ((sums["attributed_revenue_usd"] - sums["amount_usd"]).abs() < 1e-6).all()
    assert (attribution.filter(pl.col("model") == "last_touch")["order_id"].is_unique()).all()
    # the linear rows are exactly the campaigns clicked in the 7 days before each order
    clicks = _read("curated", "campaign_events").filter(pl.col("event_type") == "click")
    expected = (
        orders.filter(pl.col("status") == "completed")
        .join(clicks.select("customer_id", "campaign_id", "event_ts"), on="customer_id")
        .filter(
            (pl.col("event_ts") < pl.col("order_ts"))
            & (pl.col("event_ts") >= pl.col("order_ts") - timedelta(days=7))
        )
        .group_by("order_id", "campaign_id")
        .agg(touches=pl.len().cast(pl.Int64))
        .sort("order_id", "campaign_id")
    )
    linear = attribution.filter(pl.col("model") == "linear")
    assert_frame_equal(expected, linear.select(expected.columns).sort("order_id", "campaign_id"))
    metrics = _read("gold", "campaign_metrics")
    sends = _read("curated", "campaign_events").filter(pl.col("event_type") == "send")
    assert metrics["sends"].sum() == sends.height
    credited = attribution.filter(pl.col("model") == "last_touch")["attributed_revenue_usd"]
    assert metrics["attributed_revenue_usd"].sum() == pytest.approx(credited.sum(), abs=0.05)
    segments = _read("gold", "customer_segments")
    assert set(orders["customer_id"]) <= set(segments["customer_id"])


EXPECTED = {  # injected kind -> quarantine rules that catch or log it
    "malformed_value": {"malformed_event_type"},
    "null_required": {"not_null:event_type"},
    "unknown_foreign_key": {"unknown_campaign"},
}


def _assert_injections_handled() -> None:
    log = storage.read(injections_path()).filter(
        (pl.col("domain") == "marketing") & (pl.col("table") == "campaign_events")
    )
    assert set(log["kind"]) >= {"duplicate", "late_arrival", *EXPECTED}
    curated = _read("curated", "campaign_events")
    assert curated["event_id"].is_unique().all()
    quarantine = _read("quarantine", "campaign_events")
    rules = quarantine.group_by(key=pl.col("event_id").cast(pl.String)).agg(pl.col("_rule"))
    landed = set(curated["event_id"].cast(pl.String))
    for row in log.join(rules, left_on="record_key", right_on="key", how="left").iter_rows(
        named=True
    ):
        found = set(row["_rule"] or ())
        if row["kind"] in ("duplicate", "late_arrival"):
            assert row["record_key"] in landed or "unknown_campaign" in found, row
        else:
            assert found & (EXPECTED[row["kind"]] | {"unknown_campaign"}), row


def _snapshot() -> dict[str, pl.DataFrame]:
    keys = {p: contract_for(f"marketing.{p}").primary_key for p in PRODUCTS}
    return {p: _read("gold", p).drop("calculated_at").sort(keys[p]) for p in PRODUCTS}


@pytest.mark.slow
def test_marketing_on_a_generated_world(data_dir: Path) -> None:
    generate("tiny", seed=11)
    _run()
    _assert_products()
    _assert_injections_handled()

    before = _versions()
    _run()
    assert _versions() == before, "a rerun without new data must not write"

    generate(days=2)
    _run()
    end = date.fromisoformat(str(world_info()["end"]))
    events = _read("curated", "campaign_events")
    assert events["event_ts"].max().date() == end
    assert _read("gold", "attribution_model")["order_date"].max() >= end - timedelta(days=1)
    _assert_products()
    _assert_injections_handled()

    incremental = _snapshot()
    runs = run_pipelines(["marketing"], full_refresh=True)
    assert runs[0].status == "ok", runs[0].reason
    for product, frame in _snapshot().items():
        assert_frame_equal(incremental[product], frame, check_exact=False, abs_tol=1e-9)
