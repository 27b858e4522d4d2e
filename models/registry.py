"""The MLflow model registry rule: one registered model `churn`, alias `champion`, moved only by
a better validation score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODEL_NAME = "churn"
ALIAS = "champion"
METRIC = "roc_auc"  # validation ROC AUC decides


@dataclass(frozen=True)
class Champion:
    """The model version behind the alias, with what serving needs to use it."""

    version: str
    run_id: str
    score: float
    feature_service: str


def _client() -> Any:
    from mlflow import MlflowClient

    from models.churn import configure_mlflow

    configure_mlflow()
    return MlflowClient()


def champion() -> Champion | None:
    """The current champion, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        version = client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    except MlflowException:
        return None
    run = client.get_run(version.run_id)
    return Champion(
        version=str(version.version),
        run_id=version.run_id,
        score=float(run.data.metrics.get(METRIC, float("nan"))),
        feature_service=run.data.tags.get("feature_service", ""),
    )


def promote_if_better(run_id: str) -> tuple[bool, Champion]:
    """Register a run's model and give it the champion alias if it beats the current champion on
    the validation metric (or there is none); returns (promoted, champion after the call)."""
    import mlflow

    client = _client()
    run = client.get_run(run_id)
    if METRIC not in run.data.metrics:
        raise ValueError(f"run {run_id} has no {METRIC} metric; it cannot compete for {ALIAS}")
    score = float(run.data.metrics[METRIC])
    current = champion()
    if current is not None and current.score >= score:
        return False, current
    uri = run.data.tags.get("model_uri", f"runs:/{run_id}/model")
    version = mlflow.register_model(uri, MODEL_NAME)
    client.set_registered_model_alias(MODEL_NAME, ALIAS, version.version)
    client.set_model_version_tag(MODEL_NAME, version.version, METRIC, f"{score:.6f}")
    new = Champion(str(version.version), run_id, score, run.data.tags.get("feature_service", ""))
    return True, new
