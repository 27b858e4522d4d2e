"""The churn experiment on a tiny mesh: six runs with honest splits, the champion rule,
reproduction after new data, and the predict endpoint."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lakehouse import features
from lakehouse.config import reset_settings
from lakehouse.orchestration import run_features, run_pipelines
from lakehouse.simulation import generate
from models import api as churn_api
from models.churn import HORIZON_DAYS, configure_mlflow
from models.registry import ALIAS, MODEL_NAME, champion, promote_if_better
from models.reproduce import reproduce
from models.training import Experiment, precision_at, split_dates, train_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Experiment]:
    """A tiny mesh with features online and one full experiment."""
    old = os.environ.get("MESH_DATA_DIR")
    os.environ["MESH_DATA_DIR"] = str(tmp_path_factory.mktemp("training") / "data")
    reset_settings()
    generate("tiny", seed=17)
    run_pipelines()
    run_features()
    features.apply()
    features.materialize()
    yield train_all(scale="tiny", seed=5)
    if old is None:
        os.environ.pop("MESH_DATA_DIR", None)
    else:
        os.environ["MESH_DATA_DIR"] = old
    reset_settings()


def test_split_keeps_label_windows_out_of_validation() -> None:
    from datetime import UTC, datetime

    months = [datetime(2026, m, 1, tzinfo=UTC) for m in range(1, 7)]
    train, valid, purged = split_dates(months)
    assert valid == months[-2:] and purged
    assert all(d + timedelta(days=HORIZON_DAYS) <= valid[0] for d in train)
    assert max(train) < min(valid)
    weeks = [months[0] + timedelta(days=7 * i) for i in range(4)]
    train, valid, purged = split_dates(weeks)  # too short to purge: time order still holds
    assert not purged and max(train) < min(valid)
    with pytest.raises(ValueError, match="two or more"):
        split_dates(months[:1])


def test_precision_at_top_share() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert precision_at(y, p, 0.1) == 1.0
    assert precision_at(y, p, 0.2) == 0.5


def test_six_runs_with_metrics_artefacts_tags_and_provenance(trained: Experiment) -> None:
    import mlflow

    configure_mlflow()
    assert len(trained.runs) == 6
    assert {(r.feature_service, r.family) for r in trained.runs} == {
        (s, f) for s in ("churn_v1", "churn_v2")
        for f in ("logistic_regression", "random_forest", "hist_gradient_boosting")
    }  # fmt: skip
    client = mlflow.MlflowClient()
    for summary in trained.runs:
        run = client.get_run(summary.run_id)
        for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "precision_at_10pct"):
            assert metric in run.data.metrics
        assert run.data.tags["scale"] == "tiny" and run.data.tags["seed"] == "5"
        assert run.data.tags["feature_service"] == summary.feature_service
        domains = run.data.tags["domains"].split(",")
        assert len(domains) >= (4 if summary.feature_service == "churn_v2" else 1)
        params = run.data.params
        for key in ("registry_digest", "entity_digest", "training_set_digest", "code_version"):
            assert params[key]
        assert "input_version.ventas/curated/orders" in params
        assert params["train_as_of"] < params["valid_as_of"]
        plots = {a.path for a in client.list_artifacts(summary.run_id, "plots")}
        assert plots == {
            f"plots/{n}.png"
            for n in ("roc_curve", "pr_curve", "calibration", "feature_importance",
                      "confusion_matrix")
        }  # fmt: skip
    model = mlflow.pyfunc.load_model(client.get_run(trained.runs[0].run_id).data.tags["model_uri"])
    assert model.metadata.signature is not None


def test_the_best_run_is_champion_and_a_worse_one_does_not_replace_it(
    trained: Experiment,
) -> None:
    best = max(trained.runs, key=lambda r: r.metrics["roc_auc"])
    worst = min(trained.runs, key=lambda r: r.metrics["roc_auc"])
    current = champion()
    assert current is not None and current.run_id == best.run_id
    assert trained.promoted and current.version == trained.champion_version
    promoted, after = promote_if_better(worst.run_id)
    assert not promoted and after.version == current.version
    assert champion() == current


def test_predict_endpoint(trained: Experiment) -> None:
    from app.api import create_app
    from lakehouse.access import create_key

    client = TestClient(create_app(), headers={"X-API-Key": create_key("marketing-service")})
    online = features.online_features(champion().feature_service, [1, 2, 3])
    known = next(
        c for c, v in zip([1, 2, 3], online["total_purchases_30d"], strict=True) if v is not None
    )
    r = client.post("/churn/v1/predict", json={"customer_id": known})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 <= body["churn_probability"] <= 1
    p = body["churn_probability"]
    assert body["risk_level"] == ("HIGH" if p > 0.7 else "MEDIUM" if p > 0.4 else "LOW")
    assert body["model_version"] == trained.champion_version
    assert body["features_age_seconds"] >= 0
    missing = client.post("/churn/v1/predict", json={"customer_id": 987654321})
    assert missing.status_code == 404 and missing.json()["error_code"] == "unknown_customer"
    for bad in ({"customer_id": "abc"}, {}, {"customer_id": 1, "extra": 2}):
        wrong = client.post("/churn/v1/predict", json=bad)
        assert wrong.status_code == 422 and "error_code" in wrong.json()
    not_json = client.post(
        "/churn/v1/predict", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and "error_code" in not_json.json()
    keyless = TestClient(create_app()).post("/churn/v1/predict", json={"customer_id": known})
    assert keyless.status_code == 401
    ungranted = client.post(
        "/churn/v1/predict",
        json={"customer_id": known},
        headers={"X-API-Key": create_key("logistica-service")},
    )
    assert ungranted.status_code == 403 and ungranted.json()["error_code"] == "missing_grant"


def test_the_champion_is_reloaded_when_the_alias_moves(
    trained: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from app.api import create_app
    from lakehouse.access import create_key

    monkeypatch.setattr(churn_api, "RELOAD_CHECK_SECONDS", 0.0)
    client = TestClient(create_app(), headers={"X-API-Key": create_key("platform-admin")})
    online = features.online_features("churn_v2", list(range(1, 50)))
    known = next(
        c for c, v in zip(range(1, 50), online["total_purchases_30d"], strict=True) if v is not None
    )
    before = client.post("/churn/v1/predict", json={"customer_id": known}).json()
    other = next(r for r in trained.runs if r.run_id != trained.champion_run
                 and r.feature_service == champion().feature_service)  # fmt: skip
    configure_mlflow()
    mc = mlflow.MlflowClient()
    uri = mc.get_run(other.run_id).data.tags["model_uri"]
    version = mlflow.register_model(uri, MODEL_NAME).version
    mc.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    try:
        for _ in range(100):  # the alias is checked off the request path: poll until swapped
            after = client.post("/churn/v1/predict", json={"customer_id": known}).json()
            if after["model_version"] != before["model_version"]:
                break
            time.sleep(0.1)
        assert after["model_version"] == str(version) != before["model_version"]
    finally:
        mc.set_registered_model_alias(MODEL_NAME, ALIAS, trained.champion_version)


def test_reproduce_after_new_days_of_data(trained: Experiment) -> None:
    target = next(r for r in trained.runs if r.feature_service == "churn_v2")
    generate(days=5)
    run_pipelines()
    run_features()
    report = reproduce(target.run_id)
    assert report.ok, report.lines()
    assert report.metrics["roc_auc"][0] == report.metrics["roc_auc"][1]
    with pytest.raises(ValueError, match="no MLflow run"):
        reproduce("0" * 32)


def test_a_new_day_reaches_the_online_store_without_skew(trained: Experiment) -> None:
    from lakehouse.clock import mesh_now
    from lakehouse.features import online_features_with_time, skew

    customer = next(c for c in range(1, 60) if online_features_with_time("churn_v2", c)[1])
    _, before = online_features_with_time("churn_v2", customer)
    generate(days=1)
    run_pipelines()
    run_features()
    windows = features.materialize(incremental=True)
    now = mesh_now()
    assert all(end == now for _, end in windows.values())
    _, after = online_features_with_time("churn_v2", customer)
    assert max(after) == now > max(before)
    report = skew("churn_v2", sample=60)
    assert report.ok, report.examples
    assert report.entities == 60
