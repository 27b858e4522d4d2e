"""Batch churn scoring: the champion model over every active customer, published as the gold data
product marketing.churn_risk (`mesh score`).

Who is scored. A customer is active at the mesh clock (the newest ingestion time) when they placed
an order, of any status, in the 90 days before it, counting only orders ingested by then: the
population the model was trained on (models.churn.active_customers), read from marketing's
declared dependency ventas.customer_transaction_history. Of those, customers with no feature of
the champion's feature service at the clock (nothing within any view's TTL yet) are counted and
left out, as the predict endpoint answers 404 for them.

Features. The champion's feature service is read point in time as of the clock by the same
engine that builds training sets (lakehouse.pit), so batch scores see exactly what training saw;
a second join over the views' timestamps gives `features_as_of`, the oldest snapshot used.

Writing. The product goes through marketing's DomainContext: the contract gate, quarantine, a
MERGE on customer_id and OpenLineage events (inputs: the ventas product, every feature table of
the service and the model version; output: the gold table). Only rows whose content changed are
merged, so a rerun with the same champion, clock and features writes nothing; customers no longer
active are deleted in a second commit once the merge is published. Each commit is atomic and the
next run recomputes both from scratch, so a crash between them is repaired by rerunning.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from lakehouse import lineage, runs, storage
from lakehouse.context import DomainContext
from models.churn import RISK_LEVELS, TS, active_customers, model_inputs, risk_level_expr

if TYPE_CHECKING:
    from openlineage.client.event_v2 import InputDataset

    from lakehouse.pit import ViewSpec
    from lakehouse.registry import Registry
    from models.registry import Champion

DOMAIN = "marketing"
PRODUCT = "churn_risk"
HISTORY = "ventas.customer_transaction_history"
DIGITS = 6  # probabilities are stored rounded, and risk levels follow the stored value
AUDIT = "calculated_at"  # wall-clock write time: not part of a row's content


class ScoringError(RuntimeError):
    """Scoring cannot run on the mesh as it is (no champion, no data)."""


class NoChampionError(ScoringError):
    """No model holds the champion alias, so there is nothing to score with."""


@dataclass
class ScoreResult:
    """What one scoring run did."""

    model_name: str
    model_version: str
    feature_service: str
    scored_at: datetime
    rows: int
    levels: dict[str, int]
    without_features: int = 0
    merged: int = 0
    removed: int = 0
    version: int | None = None
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the run committed anything."""
        return bool(self.merged or self.removed) and not self.blocked

    def summary(self) -> str:
        """One line: rows scored, risk level counts, model version, what was written."""
        levels = ", ".join(f"{level} {self.levels.get(level, 0):,}" for level in RISK_LEVELS)
        skipped = f" ({self.without_features:,} without features)" if self.without_features else ""
        written = (
            f"{self.merged:,} rows merged, {self.removed:,} removed -> version {self.version}"
            if self.changed
            else f"unchanged at version {self.version}"
        )
        return (
            f"scored {self.rows:,} active customers{skipped} with model {self.model_name} "
            f"version {self.model_version} on {self.feature_service} as of "
            f"{self.scored_at:%Y-%m-%d %H:%M} "
            f"UTC: {levels}; {DOMAIN}.{PRODUCT} {written}"
        )


def customer_features(
    views: Sequence[ViewSpec], customers: pl.Series | Sequence[int], as_of: datetime
) -> pl.DataFrame:
    """customer_id, event_timestamp (= as_of), every feature of the views as of it, and
    features_as_of: the oldest snapshot time among the views with a row for the customer (null
    when none has one)."""
    from lakehouse.pit import EVENT_TIMESTAMP, point_in_time_join

    entities = pl.DataFrame({"customer_id": customers}, schema={"customer_id": pl.Int64})
    entities = entities.with_columns(pl.lit(as_of, dtype=TS).alias(EVENT_TIMESTAMP))
    frame = point_in_time_join(entities, views)
    stamps = point_in_time_join(
        entities, [replace(v, features=[v.timestamp_field]) for v in views], full_feature_names=True
    ).drop(entities.columns)
    oldest = stamps.select(
        pl.min_horizontal(pl.all().dt.convert_time_zone("UTC").cast(TS)).alias("features_as_of")
    )
    return frame.with_columns(oldest.to_series())


def probabilities(model: Any, features: pl.DataFrame) -> pl.Series:
    """The model's churn probability for each row of a feature frame, typed as in training."""
    inputs = model_inputs(features.drop("features_as_of").to_pandas())
    expected = list(getattr(model, "feature_names_in_", inputs.columns))
    missing = sorted(set(expected) - set(inputs.columns))
    if missing:
        raise ValueError(
            f"the champion model expects features {missing} that its feature service does not "
            "provide; retrain with `mesh train` after changing the feature service"
        )
    return pl.Series("churn_probability", model.predict_proba(inputs[expected])[:, 1])


def risk_frame(
    features: pl.DataFrame,
    probability: pl.Series,
    champ: Champion,
    model_name: str,
    scored_at: datetime,
    calculated_at: datetime,
) -> pl.DataFrame:
    """The churn_risk rows of scored customers, in contract order."""
    p = pl.col("churn_probability")
    return (
        features.select("customer_id", "features_as_of")
        .with_columns(probability.round(DIGITS).clip(0.0, 1.0))
        .select(
            pl.col("customer_id").cast(pl.Int64),
            p.cast(pl.Float64),
            risk_level_expr(p).alias("risk_level"),
            model_name=pl.lit(model_name),
            model_version=pl.lit(champ.version),
            feature_service=pl.lit(champ.feature_service),
            scored_at=pl.lit(scored_at, dtype=TS),
            features_as_of=pl.col("features_as_of"),
            calculated_at=pl.lit(calculated_at, dtype=TS),
        )
        .sort("customer_id")
    )


def _changes(path: Path, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows of the batch the table does not already hold, customer_ids of the table that the
    batch no longer has)."""
    if not storage.exists(path):
        return batch, pl.DataFrame(schema={"customer_id": pl.Int64})
    content = [c for c in batch.columns if c != AUDIT]
    stored = storage.read(path, columns=content)
    changed = batch.join(stored, on=content, how="anti", nulls_equal=True)
    stale = stored.select("customer_id").join(batch.select("customer_id"), on="customer_id",
                                              how="anti")  # fmt: skip
    return changed, stale


def _delete(path: Path, stale: pl.DataFrame) -> int:
    """Delete customers from the product in one commit; returns the new version."""
    from deltalake import DeltaTable

    table = DeltaTable(str(path))
    table.merge(
        stale.to_arrow(), predicate="t.customer_id = s.customer_id", source_alias="s",
        target_alias="t",
    ).when_matched_delete().execute()  # fmt: skip
    return DeltaTable(str(path)).version()


def _model_dataset(champ: Champion, model_name: str) -> InputDataset:
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    from models.churn import mlflow_uri

    version = dataset_version_dataset.DatasetVersionDatasetFacet(
        datasetVersion=champ.version, producer=lineage.PRODUCER
    )
    return InputDataset(
        namespace=mlflow_uri(), name=f"models:/{model_name}/{champ.version}",
        facets={"version": version},
    )  # fmt: skip


def _feature_ref(view: ViewSpec) -> lineage.DatasetRef:
    from lakehouse.config import get_settings

    relative = view.path.resolve().relative_to(get_settings().lakehouse_dir.resolve())
    domain, layer, table = relative.parts
    return lineage.DatasetRef(domain, layer, table)


def score(registry: Registry | None = None) -> ScoreResult:
    """Score every active customer with the champion on its feature service as of the mesh
    clock and publish marketing.churn_risk (merge on customer_id; nothing when unchanged)."""
    from lakehouse.clock import mesh_now
    from lakehouse.features import feature_store
    from lakehouse.pit import service_views
    from lakehouse.registry import load_registry
    from models.registry import MODEL_NAME, champion

    t0 = time.perf_counter()
    champ = champion()
    if champ is None:
        raise NoChampionError(
            f"no {MODEL_NAME} model holds the @champion alias yet, so there is nothing to score "
            f"with; run `mesh train` first ({DOMAIN}.{PRODUCT} was not changed)"
        )
    clock = mesh_now()
    if clock is None:
        raise ScoringError("the mesh has no curated data yet, so no clock to score at; run "
                           "`mesh build` first")  # fmt: skip
    registry = registry or load_registry()
    ctx = DomainContext(registry[DOMAIN], registry)
    path = ctx.path("gold", PRODUCT)
    with ctx.step(f"gold.{PRODUCT}") as run:
        active = active_customers(ctx.product(HISTORY), clock).sort("customer_id").collect()
        views = service_views(feature_store(), champ.feature_service)
        refs = [_feature_ref(view) for view in views]
        for ref, view in zip(refs, views, strict=True):
            run.input(ref, storage.scan(view.path), storage.version(view.path))
        run.inputs.append(_model_dataset(champ, MODEL_NAME))
        features = customer_features(views, active["customer_id"], clock)
        known = features.filter(pl.col("features_as_of").is_not_null())
        probability = pl.Series("churn_probability", [], pl.Float64)
        if known.height:
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{champ.version}")
            probability = probabilities(model, known)
        batch = risk_frame(known, probability, champ, MODEL_NAME, clock, ctx.run_at)
        changed, stale = _changes(path, batch)
        used = [(ref.name, view.column(f)) for ref, view in zip(refs, views, strict=True)
                for f in view.features]  # fmt: skip
        stamps = [(ref.name, view.column(view.timestamp_field))
                  for ref, view in zip(refs, views, strict=True)]  # fmt: skip
        column_lineage = {
            "customer_id": [(HISTORY.replace(".", "/gold/"), "customer_id")],
            "churn_probability": used,
            "risk_level": used,
            "features_as_of": stamps,
        }
        published = ctx.publish_product(PRODUCT, changed, column_lineage=column_lineage)
        if not ctx.blocked and stale.height:
            version = _delete(path, stale)
            if published is None:
                run.output(lineage.DatasetRef(DOMAIN, "gold", PRODUCT), batch.clear(), version)
    levels = dict(batch["risk_level"].value_counts().iter_rows())
    result = ScoreResult(
        model_name=MODEL_NAME,
        model_version=champ.version,
        feature_service=champ.feature_service,
        scored_at=clock,
        rows=batch.height,
        levels={level: int(levels.get(level, 0)) for level in RISK_LEVELS},
        without_features=features.height - known.height,
        merged=ctx.rows_out.get(f"gold/{PRODUCT}", 0),
        removed=0 if ctx.blocked else stale.height,
        version=storage.version(path),
        blocked=list(ctx.blocked),
        seconds=time.perf_counter() - t0,
    )
    runs.record(
        "score",
        "blocked" if result.blocked else "ok",
        result.seconds,
        {"model_version": result.model_version, "scored_at": clock.isoformat(),
         "rows": result.rows, "levels": result.levels, "merged": result.merged,
         "removed": result.removed, "version": result.version, "blocked": result.blocked},
    )  # fmt: skip
    return result
