"""`POST /churn/v1/predict`: online features from Feast, scored by the champion model.

The champion is loaded once and kept in memory together with what a request needs to score
one customer: for the usual pipeline (imputer / scaler / one-hot encoder in a ColumnTransformer,
then a classifier) a numpy version of its preprocessing, checked at load time to give exactly the
pipeline's output, so no pandas frame is built per request (the pandas path stays as fallback).

Every RELOAD_CHECK_SECONDS a request hands a check to one background thread. The check stats
the MLflow database and the curated tables' Delta logs (microseconds) and only when one of them
changed asks the registry whether the champion alias moved (loading the new version if so) and
recomputes the mesh clock, so an idle mesh costs requests nothing. Feature age is measured on
the mesh clock (the newest ingestion time), since the lakehouse holds a simulated history.

The endpoint is `async def` on purpose: its work is about a millisecond of CPU and a local
SQLite read, so running it on the event loop is cheaper than two thread-pool hops (FastAPI also
validates a sync endpoint's response in the pool) under the GIL. The API-key, grant and rate
limit check (`platform_access("ml.churn_predict")`) is an `async def` dependency on the router,
so it too stays on the loop.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lakehouse.api import ApiError, error_responses, platform_access
from models.churn import risk_level

RELOAD_CHECK_SECONDS = 5.0
# A file changed this recently may change again within the filesystem's timestamp granularity,
# so its stat is not trusted as "unchanged" until it is older than this.
SETTLE_SECONDS = 2.0
PRODUCT = "ml.churn_predict"  # the grant a caller needs (domains/access.yml)
router = APIRouter(
    prefix="/churn/v1", tags=["churn"], dependencies=[Depends(platform_access(PRODUCT))]
)
log = logging.getLogger(__name__)


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


def _one_row(model: Any, values: dict[str, Any]) -> Any:
    """The model's input frame for one customer, typed as in training (models.churn.model_inputs:
    numbers as float64 with NaN for missing, categories as objects), built without per-column
    casts since a request scores a single row."""
    import pandas as pd

    numeric = set(model.named_steps["prepare"].transformers_[0][2])
    row = {
        name: [math.nan if values.get(name) is None else float(values[name])]
        if name in numeric
        else pd.Series([values.get(name)], dtype=object)
        for name in model.feature_names_in_
    }
    return pd.DataFrame(row)


# --- the numpy version of the pipeline's preprocessing --------------------------------------

Step = Callable[[Any], Any]


def _numeric_step(transformer: Any) -> Step | None:
    """A float row -> transformed row function for SimpleImputer / StandardScaler (or a Pipeline
    of them) doing the same arithmetic as their transform(); None for anything else."""
    import numpy as np
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(transformer, Pipeline):
        inner = [_numeric_step(t) for _, t in transformer.steps if t not in (None, "passthrough")]
        steps = [s for s in inner if s is not None]
        if len(steps) != len(inner):
            return None

        def chain(x: Any) -> Any:
            for step in steps:
                x = step(x)
            return x

        return chain
    if type(transformer) is SimpleImputer:
        missing = transformer.missing_values
        stats = transformer.statistics_
        if not (isinstance(missing, float) and math.isnan(missing)) or np.isnan(stats).any():
            return None
        flagged = transformer.indicator_.features_ if transformer.add_indicator else None

        def impute(x: Any) -> Any:
            gaps = np.isnan(x)
            out = np.where(gaps, stats, x)
            if flagged is None:
                return out
            return np.concatenate([out, gaps[flagged].astype(np.float64)])

        return impute
    if type(transformer) is StandardScaler:
        mean = transformer.mean_ if transformer.with_mean else None
        scale = transformer.scale_ if transformer.with_std else None

        def standardize(x: Any) -> Any:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x

        return standardize
    return None


def _categorical_step(transformer: Any) -> Step | None:
    """A raw-values row -> one-hot row function for a OneHotEncoder that ignores unknown values
    and drops nothing; None for anything else."""
    import numpy as np
    from sklearn.preprocessing import OneHotEncoder

    if (
        type(transformer) is not OneHotEncoder
        or transformer.handle_unknown != "ignore"
        or transformer.drop_idx_ is not None
        or getattr(transformer, "_infrequent_enabled", False)
        or transformer.sparse_output
    ):
        return None
    offsets, lookups = [], []
    width = 0
    for categories in transformer.categories_:
        if any(isinstance(c, float) and math.isnan(c) for c in categories):
            return None
        lookups.append({c: i for i, c in enumerate(categories)})
        offsets.append(width)
        width += len(categories)
    dtype = transformer.dtype

    def encode(raw: list[Any]) -> Any:
        out = np.zeros(width, dtype=dtype)
        for value, lookup, offset in zip(raw, lookups, offsets, strict=True):
            index = lookup.get(value)
            if index is not None:
                out[offset + index] = 1
        return out

    return encode


def _compile_prepare(model: Any) -> Callable[[dict[str, Any]], Any] | None:
    """values -> the (1, n) matrix the pipeline's `prepare` step outputs, in numpy; None when the
    pipeline has a shape this does not know (the caller then keeps the pandas path)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    prepare, classifier = model.steps[0][1], model.steps[1][1]
    if not isinstance(prepare, ColumnTransformer) or getattr(prepare, "sparse_output_", False):
        return None
    if hasattr(classifier, "feature_names_in_"):  # fitted on a frame: numpy input would warn
        return None
    parts: list[tuple[tuple[str, ...], bool, Step]] = []
    for _, transformer, columns in prepare.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            return None  # passthrough
        if not len(columns):
            continue
        if not all(isinstance(c, str) for c in columns):
            return None
        numeric = _numeric_step(transformer)
        step = numeric or _categorical_step(transformer)
        if step is None:
            return None
        parts.append((tuple(columns), numeric is not None, step))

    def prepare_row(values: dict[str, Any]) -> Any:
        outputs = []
        for columns, numeric, step in parts:
            if numeric:
                raw = [values.get(c) for c in columns]
                x = np.array([math.nan if v is None else float(v) for v in raw], np.float64)
                outputs.append(step(x))
            else:
                outputs.append(step([values.get(c) for c in columns]))
        return np.concatenate(outputs).reshape(1, -1)

    return prepare_row


def _probe_rows(model: Any, count: int = 8) -> list[dict[str, Any]]:
    """Feature rows to check the numpy path against the pipeline: all missing, then rows mixing
    numbers, gaps, every known category, an unknown one and None."""
    import numpy as np

    rng = np.random.default_rng(0)
    categories: dict[str, list[Any]] = {}
    for _, transformer, columns in model.named_steps["prepare"].transformers_:
        for i, column in enumerate(columns if hasattr(transformer, "categories_") else []):
            categories[column] = [*transformer.categories_[i], "__unknown__", None]
    rows: list[dict[str, Any]] = [dict.fromkeys(model.feature_names_in_)]
    for k in range(count):
        row: dict[str, Any] = {}
        for name in model.feature_names_in_:
            if name in categories:
                options = categories[name]
                row[name] = options[(k * 7 + len(name)) % len(options)]
            elif rng.random() < 0.25:
                row[name] = None
            else:
                row[name] = int(rng.integers(0, 50)) if k % 2 else float(rng.normal(0, 100))
        rows.append(row)
    return rows


class Scorer:
    """Churn probability of one customer's feature values, exactly as
    `model.predict_proba(_one_row(model, values))[0, 1]`, built once per model version."""

    def __init__(self, model: Any) -> None:
        import numpy as np

        self.model = model
        classifier = model.steps[-1][1]
        if getattr(classifier, "n_jobs", None) not in (None, 1):
            classifier.n_jobs = 1  # one row: joblib's thread start-up costs more than the trees
        self._classifier = classifier
        self._prepare = _compile_prepare(model)
        if self._prepare is not None:
            for values in _probe_rows(model):
                frame = _one_row(model, values)
                fast = self._prepare(values)
                slow = model.named_steps["prepare"].transform(frame)
                same = fast.shape == slow.shape and np.array_equal(fast, slow, equal_nan=True)
                if not same or not np.array_equal(
                    classifier.predict_proba(fast), model.predict_proba(frame)
                ):
                    log.warning("churn model: numpy preprocessing differs; scoring via pandas")
                    self._prepare = None
                    break

    @property
    def fast(self) -> bool:
        """True when requests skip pandas."""
        return self._prepare is not None

    def __call__(self, values: dict[str, Any]) -> float:
        if self._prepare is None:
            return float(self.model.predict_proba(_one_row(self.model, values))[0, 1])
        return float(self._classifier.predict_proba(self._prepare(values))[0, 1])


# --- the champion in memory --------------------------------------------------------------------


@dataclass(frozen=True)
class _Served:
    """What requests read: the champion, its scorer and the mesh clock."""

    champion: Any  # models.registry.Champion
    score: Scorer
    clock: datetime | None


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _settled(stats: list[tuple[str, tuple[int, int, int] | None]]) -> tuple[Any, ...] | None:
    """The stats as a comparable signature, or None when a file changed too recently to tell
    a later change in the same timestamp tick from none (the caller then checks for real)."""
    recent = time.time_ns() - int(SETTLE_SECONDS * 1e9)
    if any(s is not None and s[2] > recent for _, s in stats):
        return None
    return tuple(stats)


def _registry_signature() -> tuple[Any, ...] | None:
    """Stats of the MLflow SQLite files (any registry write changes them); None means unknown."""
    from models.churn import mlflow_uri

    uri = mlflow_uri()
    if not uri.startswith("sqlite:///"):
        return None
    db = uri.removeprefix("sqlite:///")
    return _settled([(p, _stat(p)) for p in (db, f"{db}-wal", f"{db}-journal")])


def _clock_signature() -> tuple[Any, ...] | None:
    """Stats of every curated table's Delta log folder (a commit adds a file to it, a new table
    a folder to its layer): the mesh clock cannot move while these stay the same."""
    from lakehouse.config import get_settings

    root = str(get_settings().lakehouse_dir)
    stats = [(root, _stat(root))]
    try:
        domains = sorted(e.path for e in os.scandir(root) if e.is_dir())
    except OSError:
        return _settled(stats)
    for domain in domains:
        layer = os.path.join(domain, "curated")
        stats.append((layer, _stat(layer)))
        try:
            tables = sorted(e.path for e in os.scandir(layer) if e.is_dir())
        except OSError:
            continue
        for table in tables:
            logdir = os.path.join(table, "_delta_log")
            stats.append((logdir, _stat(logdir)))
    return _settled(stats)


class _ChampionCache:
    """The champion in memory. The first request loads it (and warms and freezes the heap);
    afterwards at most one background thread at a time, started by a request at most every
    RELOAD_CHECK_SECONDS, swaps in a new version when the alias moves and moves the clock, so no
    request waits on the registry or the mesh clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: _Served | None = None
        self._checked = 0.0
        self._refreshing = False
        self._registry: tuple[Any, ...] | None = None
        self._clock: tuple[Any, ...] | None = None

    def get(self) -> _Served:
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    registry, clock = _registry_signature(), _clock_signature()
                    self._state = self._load(None, registry=True, clock=True)
                    self._registry, self._clock = registry, clock
                    self._checked = time.monotonic()
                    # The first load imported MLflow, scikit-learn and Feast: hundreds of
                    # thousands of long-lived objects a full collection would rescan each time
                    # (~0.2 s with the GIL held). Move them out of the collector's sight.
                    gc.collect()
                    gc.freeze()
                state = self._state
        elif not self._refreshing and time.monotonic() - self._checked >= RELOAD_CHECK_SECONDS:
            self._checked = time.monotonic()
            self._refreshing = True
            threading.Thread(target=self._refresh, daemon=True, name="churn-refresh").start()
        return state

    def _refresh(self) -> None:
        try:
            registry, clock = _registry_signature(), _clock_signature()
            check_registry = registry is None or registry != self._registry
            check_clock = clock is None or clock != self._clock
            if check_registry or check_clock:
                with self._lock:
                    self._state = self._load(self._state, check_registry, check_clock)
                    self._registry, self._clock = registry, clock
        except Exception:
            log.exception("churn model refresh failed; serving the loaded version")
            self._registry = self._clock = None
        finally:
            self._refreshing = False

    @staticmethod
    def _load(state: _Served | None, registry: bool, clock: bool) -> _Served:
        from lakehouse.clock import mesh_now
        from models.registry import MODEL_NAME, champion

        now = mesh_now() if clock or state is None else state.clock
        if state is not None and not registry:
            return _Served(state.champion, state.score, now or state.clock)
        current = champion()
        if current is None:
            raise ApiError(503, "no_model", "no churn model is registered yet; run `mesh train`")
        if state is not None and state.champion.version == current.version:
            return _Served(state.champion, state.score, now or state.clock)
        import mlflow.sklearn
        from threadpoolctl import threadpool_limits

        from lakehouse.features import online_reader

        model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{current.version}")
        # One row per request: OpenMP thread start-up per tree costs far more than the
        # prediction (about 1 ms a tree against microseconds), so score single-threaded;
        # after loading, so that the model's OpenMP runtime is among those limited.
        threadpool_limits(limits=1, user_api="openmp")
        scorer = Scorer(model)
        try:  # resolve the feature service's views now rather than on the first request
            online_reader(current.feature_service, _data_dir())
        except Exception:  # the request will report it
            log.debug("online reader for %s not ready", current.feature_service, exc_info=True)
        return _Served(current, scorer, now)


def _data_dir() -> str:
    from lakehouse.config import get_settings

    return str(get_settings().data_dir.resolve())


_cache = _ChampionCache()


@router.post(
    "/predict",
    response_model=Prediction,
    responses=error_responses(401, 403, 404, 422, 429, 503),
    summary="Churn probability of a customer",
)
async def predict(request: PredictRequest) -> Prediction:
    """Score one customer with the champion model on its feature service's online features."""
    from lakehouse.features import online_features_with_time
    from models.registry import MODEL_NAME

    served = _cache.get()
    champ = served.champion
    values, stamps = online_features_with_time(champ.feature_service, request.customer_id)
    if not stamps:
        raise ApiError(
            404,
            "unknown_customer",
            f"customer {request.customer_id} has no features online",
            {"customer_id": request.customer_id, "feature_service": champ.feature_service},
        )
    probability = served.score(values)
    as_of = min(stamps)
    age = ((served.clock or datetime.now(UTC)) - as_of).total_seconds()
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
