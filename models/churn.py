"""Customer churn: labels from ventas orders, the model's inputs, and the local MLflow store.

A customer is in the population at an as-of time when they had signed up and placed an order in
the 90 days before it (counting only orders already ingested then, as a live scorer would); the
label says whether they then made no completed purchase in the following 30 days. Features come
from the point-in-time training set as of the same instant, so nothing after the as-of time reaches
the model (models/training.py runs the experiment).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
import polars as pl

from lakehouse import storage
from lakehouse.config import get_settings

EXPERIMENT = "churn"
LABEL = "churned"
KEYS = ("customer_id", "event_timestamp")
HORIZON_DAYS = 30
ACTIVITY_DAYS = 90
TS = pl.Datetime("us", "UTC")
LABEL_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Int64(),
    "event_timestamp": TS,
    LABEL: pl.Int64(),
}
# Risk levels of a churn probability, highest first: a level applies strictly above its bound.
RISK_THRESHOLDS: tuple[tuple[str, float], ...] = (("HIGH", 0.7), ("MEDIUM", 0.4))
RISK_FLOOR = "LOW"
RISK_LEVELS: tuple[str, ...] = (*(level for level, _ in RISK_THRESHOLDS), RISK_FLOOR)


def mlflow_uri() -> str:
    """Tracking URI of the mesh's MLflow (SQLite under data/mlflow), also for `mlflow ui`."""
    return f"sqlite:///{(get_settings().mlflow_dir / 'mlflow.db').resolve()}"


def mlflow_artifacts_uri() -> str:
    """Where runs of experiments created here store their artifacts (data/mlflow/artifacts)."""
    return (get_settings().mlflow_dir / "artifacts").resolve().as_uri()


def configure_mlflow() -> str:
    """Point MLflow at the local store with telemetry off (the machine is offline); returns the
    tracking URI."""
    # MLflow 3 starts a usage-telemetry sender when it is imported, so the switches go first and
    # the client is re-evaluated in case something imported MLflow earlier.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging
    import warnings

    import mlflow
    from mlflow.telemetry import set_telemetry_client

    # MLflow's SQLAlchemy store trips a deprecation warning and logs schema set-up at INFO;
    # neither tells a user anything.
    warnings.filterwarnings("ignore", message=".*noload.*")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

    set_telemetry_client()
    get_settings().mlflow_dir.mkdir(parents=True, exist_ok=True)
    uri = mlflow_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def _at(ts: datetime) -> pl.Expr:
    return pl.lit(ts, dtype=TS)


def risk_level(probability: float) -> str:
    """HIGH above 0.7, MEDIUM above 0.4, else LOW (RISK_THRESHOLDS)."""
    for level, bound in RISK_THRESHOLDS:
        if probability > bound:
            return level
    return RISK_FLOOR


def risk_level_expr(probability: pl.Expr) -> pl.Expr:
    """risk_level as a Polars expression over a column of probabilities."""
    level = pl.lit(RISK_FLOOR)
    for name, bound in reversed(RISK_THRESHOLDS):
        level = pl.when(probability > bound).then(pl.lit(name)).otherwise(level)
    return level


def active_customers(
    orders: pl.LazyFrame, as_of: datetime, activity_days: int = ACTIVITY_DAYS
) -> pl.LazyFrame:
    """customer_id of everyone who placed an order (any status) in the `activity_days` before
    `as_of`, counting only orders ingested by then: the model's population at that time."""
    return (
        orders.filter(
            (pl.col("order_ts") >= _at(as_of - timedelta(days=activity_days)))
            & (pl.col("order_ts") < _at(as_of))
            & (pl.col("ingested_at") <= _at(as_of))
        )
        .select("customer_id")
        .unique()
    )


def as_of_dates(
    orders: pl.LazyFrame, every: str = "1mo", horizon_days: int = HORIZON_DAYS
) -> list[datetime]:
    """As-of times on a calendar grid (`every`: a Polars interval such as "1mo" or "7d"), from
    the first boundary after the first order to the last one that leaves `horizon_days` of
    observed future."""
    bounds = orders.select(
        first=pl.col("order_ts").min().dt.truncate(every).dt.offset_by(every),
        last=pl.col("order_ts").max() - pl.duration(days=horizon_days),
    ).collect()
    first, last = bounds.row(0)
    if first is None or first > last:
        return []
    return pl.datetime_range(first, last, interval=every, eager=True, time_zone="UTC").to_list()


def churn_labels(
    orders: pl.LazyFrame,
    customers: pl.LazyFrame,
    as_of: Sequence[datetime],
    horizon_days: int = HORIZON_DAYS,
    activity_days: int = ACTIVITY_DAYS,
) -> pl.DataFrame:
    """One row per active customer and as-of time: churned=1 when no completed order follows
    within `horizon_days`."""
    frames = []
    for t in as_of:
        active = active_customers(orders, t, activity_days)
        bought = (
            orders.filter(
                (pl.col("status") == "completed")
                & (pl.col("order_ts") >= _at(t))
                & (pl.col("order_ts") < _at(t + timedelta(days=horizon_days)))
            )
            .select("customer_id")
            .unique()
            .with_columns(bought=pl.lit(True))
        )
        frames.append(
            customers.filter(pl.col("signup_ts") < _at(t))
            .select("customer_id")
            .join(active, on="customer_id", how="semi")
            .join(bought, on="customer_id", how="left")
            .select(
                "customer_id",
                event_timestamp=_at(t),
                churned=pl.col("bought").is_null(),
            )
        )
    if not frames:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    return pl.concat(frames).cast(LABEL_SCHEMA).sort(*KEYS).collect()  # type: ignore[arg-type]


def build_labels(
    as_of: Sequence[datetime] | None = None,
    every: str = "1mo",
    versions: dict[str, int | None] | None = None,
) -> pl.DataFrame:
    """Churn labels from ventas curated orders and customers at the given as-of times (default:
    every `every` across the history that leaves 30 days of future), optionally read at pinned
    Delta versions (keys such as "ventas/curated/orders")."""
    root = get_settings().lakehouse_dir
    pinned = versions or {}
    orders = storage.scan(root / "ventas/curated/orders", pinned.get("ventas/curated/orders"))
    customers = storage.scan(
        root / "ventas/curated/customers", pinned.get("ventas/curated/customers")
    )
    dates = as_of_dates(orders, every) if as_of is None else list(as_of)
    return churn_labels(orders, customers, dates)


def default_grid() -> str:
    """Monthly as-of times when the history holds three or more of them, else weekly."""
    orders = storage.scan(get_settings().table_path("ventas", "curated", "orders"))
    return "1mo" if len(as_of_dates(orders, "1mo")) >= 3 else "7d"


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns from a feature frame: numbers as float64 (nulls as NaN) and
    categories as object (nulls as None), the same in training and scoring."""
    features = frame.drop(columns=[c for c in (*KEYS, LABEL) if c in frame.columns])
    out = {}
    for name, col in features.items():
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            out[name] = col.astype("float64")
        else:
            out[name] = col.astype(object).where(col.notna(), None)
    return pd.DataFrame(out, index=frame.index)
