"""Customer churn: labels from ventas orders, a point-in-time training set from Feast, MLflow runs.

A customer is in the population at an as-of time when they had signed up and placed an order in
the 90 days before it (counting only orders already ingested then, as a live scorer would); the
label says whether they then made no completed purchase in the following 30 days. Features come
from Feast as of the same instant, so nothing after the as-of time reaches the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import polars as pl

from lakehouse import storage
from lakehouse.config import get_settings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

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
MODEL_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_iter": 200,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "random_state": 0,
}
# MLflow saves scikit-learn models with skops, which loads only allow-listed types. The model is
# built and saved by this module, so its two non-default types (the boosted trees' node arrays
# and numpy dtypes) are trusted explicitly; anything else still fails to load.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]


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
        active = orders.filter(
            (pl.col("order_ts") >= _at(t - timedelta(days=activity_days)))
            & (pl.col("order_ts") < _at(t))
            & (pl.col("ingested_at") <= _at(t))
        ).select("customer_id")
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


def build_labels(as_of: Sequence[datetime] | None = None, every: str = "1mo") -> pl.DataFrame:
    """Churn labels from ventas curated orders and customers at the given as-of times (default:
    every `every` across the history that leaves 30 days of future)."""
    settings = get_settings()
    orders = storage.scan(settings.table_path("ventas", "curated", "orders"))
    customers = storage.scan(settings.table_path("ventas", "curated", "customers"))
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


def build_model(inputs: pd.DataFrame, params: dict[str, Any] | None = None) -> Pipeline:
    """Untrained pipeline: impute numbers (keeping a missing flag), one-hot categories, boosted
    trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = [c for c in inputs.columns if inputs[c].dtype == "float64"]
    categorical = [c for c in inputs.columns if c not in numeric]
    prepare = ColumnTransformer(
        [
            # Missing is informative (no purchase yet), so it stays visible as an indicator.
            (
                "numeric",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                numeric,
            ),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
        ]
    )
    classifier = HistGradientBoostingClassifier(**(params or MODEL_PARAMS))
    return Pipeline([("prepare", prepare), ("classifier", classifier)])


def evaluate(y_true: pd.Series, churn_probability: pd.Series) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss and Brier score (NaN where a metric needs both classes)."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    both = y_true.nunique() == 2
    nan = float("nan")
    return {
        "roc_auc": float(roc_auc_score(y_true, churn_probability)) if both else nan,
        "pr_auc": float(average_precision_score(y_true, churn_probability)) if both else nan,
        "log_loss": float(log_loss(y_true, churn_probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, churn_probability, pos_label=1)),
    }


def training_set(feature_service: str, labels: pl.DataFrame) -> pd.DataFrame:
    """Labels joined point in time with the service's features, sorted by as-of then customer."""
    from lakehouse.features import historical_features

    frame = historical_features(feature_service, labels)
    return frame.sort_values(list(KEYS)).reset_index(drop=True)


def _pip_requirements() -> list[str]:
    # Pinned from what is installed: MLflow's requirement inference re-imports the model in a
    # subprocess, which is slow and adds nothing here.
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "pandas", "numpy", "skops")]


def train(
    feature_service: str = "churn_v1",
    every: str | None = None,
    scale: str | None = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Train the churn model on earlier as-of times, validate on the last, log it to MLflow;
    returns the run id."""
    every = every or default_grid()
    labels = build_labels(every=every)
    dates = labels["event_timestamp"].unique().sort().to_list()
    if len(dates) < 2:
        raise ValueError(
            f"churn training needs labels at two or more as-of times, found {len(dates)} with "
            f"every={every!r}; the history is too short for that grid, try every='7d'"
        )
    frame = training_set(feature_service, labels)
    valid_mask = frame["event_timestamp"] == pd.Timestamp(dates[-1])
    inputs, target = model_inputs(frame), frame[LABEL].astype(int)
    x_train, y_train = inputs[~valid_mask], target[~valid_mask]
    x_valid, y_valid = inputs[valid_mask], target[valid_mask]
    if y_train.nunique() < 2:
        raise ValueError(
            f"every training label is {y_train.iloc[0]} ({len(y_train)} rows before "
            f"{dates[-1]:%Y-%m-%d}); the model needs churners and non-churners"
        )

    configure_mlflow()
    import mlflow
    from mlflow.models import infer_signature

    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=mlflow_artifacts_uri())
    mlflow.set_experiment(EXPERIMENT)

    model_params = params or MODEL_PARAMS
    model = build_model(inputs, model_params).fit(x_train, y_train)
    metrics = evaluate(y_valid, pd.Series(model.predict_proba(x_valid)[:, 1]))
    tags = {"feature_service": feature_service, "model": "churn"}
    if scale:
        tags["scale"] = scale
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_params(
            {
                **{f"model_{k}": v for k, v in model_params.items()},
                "classifier": type(model[-1]).__name__,
                "feature_service": feature_service,
                "features": ",".join(inputs.columns),
                "as_of_every": every,
                "horizon_days": HORIZON_DAYS,
                "activity_days": ACTIVITY_DAYS,
                "train_as_of_first": f"{dates[0]:%Y-%m-%d}",
                "train_as_of_last": f"{dates[-2]:%Y-%m-%d}",
                "valid_as_of": f"{dates[-1]:%Y-%m-%d}",
                "n_train": len(x_train),
                "n_valid": len(x_valid),
            }
        )
        mlflow.log_metrics(
            {
                **metrics,
                "churn_rate_train": float(y_train.mean()),
                "churn_rate_valid": float(y_valid.mean()),
            }
        )
        example = x_train.head(5)
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=_pip_requirements(),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return run.info.run_id
