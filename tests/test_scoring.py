"""Batch churn scoring (`mesh score`) on the tiny trained mesh of test_training: the product
matches its contract and the shared risk thresholds, reruns write nothing, lineage names the
features, the model and the product, and without a champion nothing is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_training import trained  # noqa: F401  (the module's tiny mesh with six runs)

from lakehouse import storage, tables
from lakehouse.clock import mesh_now
from lakehouse.contracts import contract_for
from lakehouse.lineage import read_events
from lakehouse.orchestration import run_pipelines
from lakehouse.quality import validate
from models.churn import (
    RISK_LEVELS,
    RISK_THRESHOLDS,
    active_customers,
    configure_mlflow,
    model_inputs,
    risk_level,
    risk_level_expr,
)
from models.registry import ALIAS, MODEL_NAME, champion
from models.scoring import NoChampionError, ScoreResult, score
from models.training import Experiment

PRODUCT = "marketing.churn_risk"
MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


def _path() -> Path:
    return storage.table_path("marketing", "gold", "churn_risk")


def _content() -> pl.DataFrame:
    return tables.read(PRODUCT).drop("calculated_at").sort("customer_id")


@pytest.fixture(scope="module")
def scored(trained: Experiment) -> Iterator[ScoreResult]:  # noqa: F811
    """The first scoring of the trained mesh."""
    assert not storage.exists(_path()), "mesh run must not build churn_risk"
    yield score()


@pytest.fixture
def alias_restored(trained: Experiment) -> Iterator[None]:  # noqa: F811
    """Put the champion alias back on the experiment's champion after the test."""
    yield
    from mlflow import MlflowClient

    configure_mlflow()
    MlflowClient().set_registered_model_alias(MODEL_NAME, ALIAS, trained.champion_version)


def test_risk_levels_share_one_definition() -> None:
    probabilities = [0.0, 0.4, 0.4000001, 0.55, 0.7, 0.7000001, 1.0]
    expected = ["LOW", "LOW", "MEDIUM", "MEDIUM", "MEDIUM", "HIGH", "HIGH"]
    assert [risk_level(p) for p in probabilities] == expected
    frame = pl.DataFrame({"p": probabilities}).select(risk_level_expr(pl.col("p")))
    assert frame.to_series().to_list() == expected
    assert dict(RISK_THRESHOLDS) == {"HIGH": 0.7, "MEDIUM": 0.4}
    assert contract_for(PRODUCT).column("risk_level").valid_values == RISK_LEVELS


@pytest.mark.slow
def test_product_matches_its_contract(scored: ScoreResult) -> None:
    contract = contract_for(PRODUCT)
    df = tables.read(PRODUCT)
    assert df.schema == pl.Schema({c.name: c.physical_type for c in contract.columns})
    assert df.height == scored.rows == scored.merged > 0
    assert validate(df, contract).failure_share == 0
    assert df["customer_id"].is_unique().all()
    assert df["churn_probability"].is_between(0, 1).all()
    clock = mesh_now()
    current = champion()
    assert current is not None
    assert set(df["model_name"]) == {MODEL_NAME}
    assert set(df["model_version"]) == {current.version}
    assert set(df["feature_service"]) == {current.feature_service}
    assert set(df["scored_at"]) == {clock}
    assert (df["features_as_of"] <= clock).all()
    assert scored.summary().startswith(f"scored {scored.rows:,} active customers")


@pytest.mark.slow
def test_every_active_customer_is_scored_on_point_in_time_features(scored: ScoreResult) -> None:
    import mlflow.sklearn

    from lakehouse.pit import training_set

    clock = mesh_now()
    assert clock is not None
    history = storage.scan(storage.table_path("ventas", "gold", "customer_transaction_history"))
    active = active_customers(history, clock).collect()
    df = tables.read(PRODUCT)
    assert set(df["customer_id"]) <= set(active["customer_id"])
    assert df.height + scored.without_features == active.height
    current = champion()
    assert current is not None
    sample = df.sort("customer_id").head(25)
    entities = sample.select("customer_id", event_timestamp=pl.col("scored_at"))
    features = training_set(current.feature_service, entities)
    model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/{current.version}")
    expected = model.predict_proba(model_inputs(features.to_pandas()))[:, 1].round(6)
    assert sample["churn_probability"].to_list() == pytest.approx(list(expected), abs=1e-9)


@pytest.mark.slow
def test_risk_levels_follow_the_thresholds(scored: ScoreResult) -> None:
    df = tables.read(PRODUCT)
    assert df["risk_level"].to_list() == [risk_level(p) for p in df["churn_probability"]]
    counts = dict(df["risk_level"].value_counts().iter_rows())
    assert scored.levels == {level: counts.get(level, 0) for level in RISK_LEVELS}
    assert sum(scored.levels.values()) == df.height


@pytest.mark.slow
def test_rerun_with_the_same_champion_and_clock_writes_nothing(scored: ScoreResult) -> None:
    version, before = storage.version(_path()), tables.read(PRODUCT)
    again = score()
    assert not again.changed and again.merged == again.removed == 0
    assert again.version == version == storage.version(_path())
    assert again.levels == scored.levels
    assert_frame_equal(tables.read(PRODUCT), before)
    assert "unchanged" in again.summary()
    # the domain pipeline leaves the product to `mesh score`
    [marketing] = run_pipelines(["marketing"])
    assert marketing.status == "ok", marketing.reason
    assert "gold/churn_risk" not in marketing.written
    assert storage.version(_path()) == version


@pytest.mark.slow
def test_lineage_names_the_features_the_model_and_the_product(scored: ScoreResult) -> None:
    events = [e for e in read_events() if e["job"]["name"] == "marketing.gold.churn_risk"]
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["outputs"]]
    assert complete and events[0]["eventType"] == "START"
    event = complete[0]
    inputs = {i["name"] for i in event["inputs"]}
    current = champion()
    assert current is not None
    assert "ventas/gold/customer_transaction_history" in inputs
    assert f"models:/{MODEL_NAME}/{current.version}" in inputs
    features = {name for name in inputs if "/features/" in name}
    assert "ventas/features/customer_features" in features
    if current.feature_service == "churn_v2":
        assert {n.split("/")[0] for n in features} == {"ventas", "logistica", "marketing",
                                                       "finanzas"}  # fmt: skip
    [output] = event["outputs"]
    assert output["name"] == "marketing/gold/churn_risk"
    assert output["facets"]["version"]["datasetVersion"] == "0"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == scored.rows
    sources = output["facets"]["columnLineage"]["fields"]["churn_probability"]["inputFields"]
    assert {s["name"] for s in sources} == features


@pytest.mark.slow
def test_customers_no_longer_active_are_removed(scored: ScoreResult) -> None:
    ghost = tables.read(PRODUCT).head(1).with_columns(customer_id=pl.lit(10**9, pl.Int64))
    storage.merge(ghost, _path(), ["customer_id"])
    version = storage.version(_path())
    result = score()
    assert (result.merged, result.removed) == (0, 1)
    assert result.version == storage.version(_path()) == version + 1
    assert 10**9 not in set(tables.read(PRODUCT)["customer_id"])


@pytest.mark.slow
def test_a_new_champion_rescores_every_customer(
    scored: ScoreResult,
    trained: Experiment,  # noqa: F811
    alias_restored: None,
) -> None:
    import mlflow

    configure_mlflow()
    client = mlflow.MlflowClient()
    other = next(r for r in trained.runs if r.run_id != trained.champion_run)
    uri = client.get_run(other.run_id).data.tags["model_uri"]
    version = str(mlflow.register_model(uri, MODEL_NAME).version)
    client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    result = score()
    df = tables.read(PRODUCT)
    assert result.model_version == version and set(df["model_version"]) == {version}
    assert set(df["feature_service"]) == {other.feature_service}
    assert result.merged == result.rows == df.height  # every row rewritten
    client.set_registered_model_alias(MODEL_NAME, ALIAS, trained.champion_version)
    back = score()
    assert back.merged == back.rows
    assert set(tables.read(PRODUCT)["model_version"]) == {trained.champion_version}


@pytest.mark.slow
def test_without_a_champion_nothing_is_touched(
    scored: ScoreResult,
    alias_restored: None,
) -> None:
    from mlflow import MlflowClient

    version, before = storage.version(_path()), _content()
    configure_mlflow()
    MlflowClient().delete_registered_model_alias(MODEL_NAME, ALIAS)
    with pytest.raises(NoChampionError, match=r"run `mesh train` first"):
        score()
    out = subprocess.run([*MESH, "score"], env={**os.environ, "COLUMNS": "200"},
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 1
    assert "run `mesh train` first" in out.stderr
    assert storage.version(_path()) == version
    assert_frame_equal(_content(), before)
