"""`POST /churn/v1/predict`: online features from Feast, scored by the champion model.

The champion is loaded once and kept in memory; every few seconds a request checks whether the
alias moved and, if so, loads the new version. Feature age is measured on the mesh clock (the
newest ingestion time), since the lakehouse holds a simulated history.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from lakehouse.api import ApiError, error_responses

RELOAD_CHECK_SECONDS = 5.0
router = APIRouter(prefix="/churn/v1", tags=["churn"])


class PredictRequest(BaseModel):
    """Who to score."""

    model_config = ConfigDict(extra="forbid", strict=True)
    customer_id: int = Field(description="The customer to score", examples=[1042])


class Prediction(BaseModel):
    """Churn probability of one customer with the evidence behind it."""

    customer_id: int
    churn_probability: float = Field(ge=0, le=1)
    risk_level: str = Field(description="HIGH above 0.7, MEDIUM above 0.4, else LOW")
    model_name: str
    model_version: str
    feature_service: str
    features_as_of: datetime = Field(description="Oldest snapshot time among the features used")
    features_age_seconds: float = Field(description="Mesh clock minus features_as_of")


def risk_level(probability: float) -> str:
    """HIGH above 0.7, MEDIUM above 0.4, else LOW."""
    if probability > 0.7:
        return "HIGH"
    if probability > 0.4:
        return "MEDIUM"
    return "LOW"


class _ChampionCache:
    """The champion model in memory. The first request loads it; afterwards a background thread
    checks the registry alias every RELOAD_CHECK_SECONDS and swaps in a new version when the alias
    moves, so no request waits on the registry or the mesh clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[Any, Any, datetime | None] | None = None
        self._checked = 0.0

    def get(self) -> tuple[Any, Any, datetime | None]:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self._load(None)
                    self._checked = time.monotonic()
        elif time.monotonic() - self._checked >= RELOAD_CHECK_SECONDS:
            self._checked = time.monotonic()
            threading.Thread(target=self._refresh, daemon=True).start()
        return self._state

    def _refresh(self) -> None:
        with self._lock:
            self._state = self._load(self._state)

    @staticmethod
    def _load(state: tuple[Any, Any, datetime | None] | None) -> tuple[Any, Any, datetime | None]:
        from lakehouse.clock import mesh_now
        from models.registry import MODEL_NAME, champion

        current = champion()
        if current is None:
            raise ApiError(503, "no_model", "no churn model is registered yet; run `mesh train`")
        if state is not None and state[1].version == current.version:
            return state[0], state[1], mesh_now() or state[2]
        import mlflow.sklearn
        from threadpoolctl import threadpool_limits

        model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{current.version}")
        # One row per request: OpenMP thread start-up per tree costs far more than the
        # prediction (about 1 ms a tree against microseconds), so score single-threaded;
        # after loading, so that the model's OpenMP runtime is among those limited.
        threadpool_limits(limits=1, user_api="openmp")
        return model, current, mesh_now()


_cache = _ChampionCache()


def _one_row(model: Any, values: dict[str, Any]) -> Any:
    """The model's input frame for one customer, typed as in training (models.churn.model_inputs:
    numbers as float64 with NaN for missing, categories as objects), built without per-column
    casts since a request scores a single row."""
    import math

    import pandas as pd

    numeric = set(model.named_steps["prepare"].transformers_[0][2])
    row = {
        name: [math.nan if values.get(name) is None else float(values[name])]
        if name in numeric
        else pd.Series([values.get(name)], dtype=object)
        for name in model.feature_names_in_
    }
    return pd.DataFrame(row)


@router.post(
    "/predict",
    response_model=Prediction,
    responses=error_responses(404, 422, 503),
    summary="Churn probability of a customer",
)
async def predict(request: PredictRequest) -> Prediction:
    """Score one customer with the champion model on its feature service's online features."""
    from lakehouse.features import online_features_with_time
    from models.registry import MODEL_NAME

    model, champ, clock = _cache.get()
    values, stamps = online_features_with_time(champ.feature_service, request.customer_id)
    if not stamps:
        raise ApiError(
            404,
            "unknown_customer",
            f"customer {request.customer_id} has no features online",
            {"customer_id": request.customer_id, "feature_service": champ.feature_service},
        )
    probability = float(model.predict_proba(_one_row(model, values))[0, 1])
    as_of = min(stamps)
    age = ((clock or datetime.now(UTC)) - as_of).total_seconds()
    return Prediction(
        customer_id=request.customer_id,
        churn_probability=round(probability, 6),
        risk_level=risk_level(probability),
        model_name=MODEL_NAME,
        model_version=champ.version,
        feature_service=champ.feature_service,
        features_as_of=as_of,
        features_age_seconds=max(age, 0.0),
    )
