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
    """The champion model in memory, reloaded when the registry alias points elsewhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None
        self._champion: Any = None
        self._checked = 0.0
        self._clock: datetime | None = None

    def get(self) -> tuple[Any, Any, datetime | None]:
        now = time.monotonic()
        if self._model is not None and now - self._checked < RELOAD_CHECK_SECONDS:
            return self._model, self._champion, self._clock
        with self._lock:
            from lakehouse.clock import mesh_now
            from models.registry import champion

            current = champion()
            if current is None:
                raise ApiError(
                    503, "no_model", "no churn model is registered yet; run `mesh train`"
                )
            if self._champion is None or current.version != self._champion.version:
                import mlflow.sklearn
                from threadpoolctl import threadpool_limits

                from models.registry import MODEL_NAME

                self._model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{current.version}")
                # One row per request: OpenMP thread start-up per tree costs far more than the
                # prediction (about 1 ms a tree against microseconds), so score single-threaded.
                # After loading, so that the model's OpenMP runtime is among those limited.
                threadpool_limits(limits=1, user_api="openmp")
                self._champion = current
            if self._clock is None:
                self._clock = mesh_now()
            else:  # reading the clock scans table statistics: never on the request path again
                threading.Thread(target=self._refresh_clock, daemon=True).start()
            self._checked = now
        return self._model, self._champion, self._clock

    def _refresh_clock(self) -> None:
        from lakehouse.clock import mesh_now

        self._clock = mesh_now() or self._clock


_cache = _ChampionCache()


@router.post(
    "/predict",
    response_model=Prediction,
    responses=error_responses(404, 422, 503),
    summary="Churn probability of a customer",
)
def predict(request: PredictRequest) -> Prediction:
    """Score one customer with the champion model on its feature service's online features."""
    import pandas as pd

    from lakehouse.features import online_features_with_time
    from models.churn import model_inputs
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
    frame = model_inputs(pd.DataFrame({k: [v] for k, v in values.items()}))
    probability = float(model.predict_proba(frame)[0, 1])
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
