"""The churn experiment: every model family on every feature service, logged to MLflow with the
provenance needed to rebuild the exact training set later (`mesh train --reproduce RUN_ID`)."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from lakehouse import storage
from lakehouse.config import PROJECT_ROOT, get_settings
from models import families
from models.churn import (
    ACTIVITY_DAYS,
    EXPERIMENT,
    HORIZON_DAYS,
    KEYS,
    LABEL,
    build_labels,
    configure_mlflow,
    default_grid,
    mlflow_artifacts_uri,
    model_inputs,
)

SERVICES = ("churn_v1", "churn_v2")
LABEL_TABLES = ("ventas/curated/orders", "ventas/curated/customers")


@dataclass
class RunSummary:
    """One logged run: which family on which service, and how it scored on validation."""

    run_id: str
    family: str
    feature_service: str
    metrics: dict[str, float]


@dataclass
class Experiment:
    """The runs of one `mesh train`, and what happened to the champion alias."""

    runs: list[RunSummary] = field(default_factory=list)
    promoted: bool = False
    champion_version: str = ""
    champion_run: str = ""


def digest(frame: pl.DataFrame) -> str:
    """Order-independent content digest of a frame (sorted, written as CSV)."""
    ordered = frame.sort(frame.columns)
    return hashlib.sha256(ordered.write_csv(float_precision=12).encode()).hexdigest()


def _code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    from lakehouse import __version__

    return f"{__version__}+{sha}"


def _relative(path: Path) -> str:
    return path.resolve().relative_to(get_settings().lakehouse_dir.resolve()).as_posix()


def service_spec(service: str) -> tuple[list[Any], str, list[str]]:
    """(view specs, registry digest of the service's definition, domains it draws on)."""
    from lakehouse.features import feature_store
    from lakehouse.pit import service_views

    store = feature_store()
    views = service_views(store, service)
    definition = [
        {
            "view": v.name,
            "table": _relative(v.path),
            "keys": dict(v.join_keys),
            "features": list(v.features),
            "ttl_s": v.ttl.total_seconds() if v.ttl else None,
        }
        for v in views
    ]
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    domains = sorted({store.get_feature_view(v.name).tags.get("domain", "?") for v in views})
    return views, digest, domains


def precision_at(y_true: np.ndarray, probability: np.ndarray, share: float = 0.1) -> float:
    """Churn rate among the `share` of customers with the highest predicted probability."""
    k = max(1, math.ceil(len(probability) * share))
    top = np.argsort(-probability, kind="stable")[:k]
    return float(np.mean(y_true[top]))


def evaluate(y_true: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier score and precision at the top 10 %."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    both = len(np.unique(y_true)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_true, probability)) if both else math.nan,
        "pr_auc": float(average_precision_score(y_true, probability)) if both else math.nan,
        "log_loss": float(log_loss(y_true, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, probability)),
        "precision_at_10pct": precision_at(y_true, probability),
    }


def split_dates(dates: Sequence[Any]) -> tuple[list[Any], list[Any], bool]:
    """(train, validation, purged): the latest as-of time (two when there are five or more)
    validates; earlier ones train. A training label looks HORIZON_DAYS ahead, so as-of times
    whose label window reaches into validation are dropped (purged) when enough remain; a
    history too short for that (the tiny scale) keeps them and says so."""
    dates = sorted(dates)
    if len(dates) < 2:
        raise ValueError(
            f"churn training needs labels at two or more as-of times, found {len(dates)}; the "
            "history is too short (generate more days: `mesh generate --days 30`)"
        )
    n_valid = 2 if len(dates) >= 5 else 1
    valid, earlier = dates[-n_valid:], dates[:-n_valid]
    purged = [d for d in earlier if d + timedelta(days=HORIZON_DAYS) <= valid[0]]
    return (purged, valid, True) if purged else (earlier, valid, False)


def training_frame(
    service: str, labels: pl.DataFrame, versions: dict[str, int | None] | None = None
) -> pl.DataFrame:
    """Labels joined point in time with the service's features (our ASOF engine); feature tables
    pinned to other Delta versions than their current one are read by time travel."""
    from dataclasses import replace

    from lakehouse.features import feature_store
    from lakehouse.pit import point_in_time_join, service_views

    views = service_views(feature_store(), service)
    with tempfile.TemporaryDirectory(prefix="mesh-pinned-") as tmp:
        pinned = []
        for view in views:
            wanted = (versions or {}).get(_relative(view.path))
            if wanted is not None and wanted != storage.version(view.path):
                copy = Path(tmp) / view.name
                storage.write(storage.read(view.path, wanted), copy, mode="overwrite")
                view = replace(view, path=copy)
            pinned.append(view)
        frame = point_in_time_join(labels, pinned)
    return frame.sort(list(KEYS))


def _trusted_types(model: Any) -> list[str]:
    # The model is built and saved right here, so every type skops finds in it is trusted.
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def fit_and_log(
    family: str,
    service: str,
    frame: pl.DataFrame,
    train_dates: list[Any],
    valid_dates: list[Any],
    seed: int,
    params: dict[str, str],
    tags: dict[str, str],
) -> RunSummary:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.inspection import permutation_importance

    from models.plots import evaluation_plots

    frame = frame.filter(pl.col("event_timestamp").is_in(train_dates + valid_dates))
    pdf = frame.to_pandas()  # after the filter, so rows line up with is_train
    is_train = frame["event_timestamp"].is_in(train_dates).to_numpy()
    inputs, target = model_inputs(pdf), pdf[LABEL].astype(int).to_numpy()
    x_train, y_train = inputs[is_train], target[is_train]
    x_valid, y_valid = inputs[~is_train], target[~is_train]
    if len(np.unique(y_train)) < 2:
        raise ValueError("the training months hold only one class; the model needs both")
    model = families.build(family, inputs, seed).fit(x_train, y_train)
    probability = model.predict_proba(x_valid)[:, 1]
    metrics = evaluate(y_valid, probability)
    sample = np.random.default_rng(seed).permutation(len(x_valid))[:3000]
    importance = permutation_importance(
        model, x_valid.iloc[sample], y_valid[sample], scoring="roc_auc", n_repeats=3,
        random_state=seed, n_jobs=1,
    )  # fmt: skip
    importances = pd.Series(importance.importances_mean, index=x_valid.columns)
    with mlflow.start_run(run_name=f"{service}-{family}", tags=tags) as run:
        mlflow.log_params(
            {
                **params,
                "family": family,
                **{f"model.{k}": v for k, v in families.PARAMS[family].items()},
                "features": ",".join(inputs.columns),
                "n_train": len(x_train),
                "n_valid": len(x_valid),
            }
        )
        mlflow.log_metrics(
            {**metrics, "churn_rate_train": float(y_train.mean()),
             "churn_rate_valid": float(y_valid.mean())}
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            for png in evaluation_plots(
                y_valid, probability, importances, Path(tmp), f"{family} on {service}"
            ):
                mlflow.log_artifact(str(png), artifact_path="plots")
            importances.sort_values(ascending=False).to_csv(Path(tmp) / "importances.csv")
            mlflow.log_artifact(str(Path(tmp) / "importances.csv"))
        example = x_train.head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=[],
            skops_trusted_types=_trusted_types(model),
        )
        mlflow.set_tag("model_uri", info.model_uri)
    return RunSummary(run.info.run_id, family, service, metrics)


def train_all(
    services: Sequence[str] = SERVICES,
    model_families: Sequence[str] = families.FAMILIES,
    seed: int = 42,
    scale: str | None = None,
    every: str | None = None,
) -> Experiment:
    """Train every family on every service over the same labels and split; register the best
    run as the champion if it beats the current one."""
    import mlflow

    from models.registry import promote_if_better

    every = every or default_grid()
    versions = {t: storage.version(get_settings().lakehouse_dir / t) for t in LABEL_TABLES}
    labels = build_labels(every=every, versions=versions)
    train_dates, valid_dates, purged = split_dates(labels["event_timestamp"].unique().to_list())
    labels = labels.filter(pl.col("event_timestamp").is_in(train_dates + valid_dates))
    configure_mlflow()
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=mlflow_artifacts_uri())
    mlflow.set_experiment(EXPERIMENT)
    experiment = Experiment()
    for service in services:
        views, registry_digest, domains = service_spec(service)
        tables = {_relative(v.path): storage.version(v.path) for v in views}
        frame = training_frame(service, labels, tables)  # type: ignore[arg-type]
        params = {
            "feature_service": service,
            "seed": str(seed),
            "as_of_every": every,
            "horizon_days": str(HORIZON_DAYS),
            "activity_days": str(ACTIVITY_DAYS),
            "train_as_of": ",".join(f"{d:%Y-%m-%d}" for d in train_dates),
            "valid_as_of": ",".join(f"{d:%Y-%m-%d}" for d in valid_dates),
            "label_windows_purged": str(purged),
            "registry_digest": registry_digest,
            "entity_digest": digest(labels),
            "training_set_digest": digest(frame),
            "code_version": _code_version(),
            **{f"input_version.{t}": str(v) for t, v in {**versions, **tables}.items()},
        }
        tags = {
            "feature_service": service,
            "domains": ",".join(domains),
            "scale": scale or "unknown",
            "seed": str(seed),
            "model": "churn",
        }
        for family in model_families:
            run = fit_and_log(family, service, frame, train_dates, valid_dates, seed,
                              params, {**tags, "family": family})  # fmt: skip
            experiment.runs.append(run)
    best = max(experiment.runs, key=lambda r: r.metrics["roc_auc"])
    experiment.promoted, champ = promote_if_better(best.run_id)
    experiment.champion_version, experiment.champion_run = champ.version, champ.run_id
    return experiment
