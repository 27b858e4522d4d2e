"""`mesh build` at the tiny scale in a temp dir, then every artefact, server and the notebook."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import polars as pl
import pytest

from lakehouse import storage
from lakehouse.config import PROJECT_ROOT, reset_settings
from lakehouse.registry import load_registry

pytestmark = pytest.mark.slow
MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A mesh built once by the real CLI; yields (data dir, build output)."""
    root = tmp_path_factory.mktemp("mesh") / "data"
    old = os.environ.get("MESH_DATA_DIR")
    os.environ["MESH_DATA_DIR"] = str(root)
    reset_settings()
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [*MESH, "build", "--scale", "tiny"], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield root, result.stdout
    if old is None:
        os.environ.pop("MESH_DATA_DIR", None)
    else:
        os.environ["MESH_DATA_DIR"] = old
    reset_settings()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen[bytes], seconds: float = 90) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds}s")


def test_build_prints_how_to_open_every_ui(built: tuple[Path, str]) -> None:
    _, out = built
    for what in ("Dashboard", "API docs", "MLflow UI", "Feast UI", "/docs", "mesh dashboard"):
        assert what in out


def test_every_domain_has_raw_curated_and_gold(built: tuple[Path, str]) -> None:
    tables = storage.list_tables()
    for domain in load_registry().names():
        layers = {layer for d, layer, _, _ in tables if d == domain}
        assert {"raw", "curated", "gold"} <= layers, domain
    for _, _, name, path in tables:
        assert storage.row_count(path) > 0, name


def test_daily_revenue_has_the_contract_fields_and_reconciles(built: tuple[Path, str]) -> None:
    revenue = storage.read(storage.table_path("ventas", "gold", "daily_revenue"))
    assert revenue.columns == [
        "date", "region", "revenue_gross", "revenue_net", "transactions_count",
        "refunds_count", "currency", "calculated_at",
    ]  # fmt: skip
    assert set(revenue["region"]) == {"LATAM", "NA", "EU", "APAC"}
    assert revenue.select(pl.struct("date", "region").is_unique().all()).item()
    orders = storage.read(storage.table_path("ventas", "curated", "orders"))
    completed = orders.filter(pl.col("status") == "completed")
    assert revenue["transactions_count"].sum() == completed.height
    assert revenue["revenue_gross"].sum() == pytest.approx(completed["amount_usd"].sum(), rel=1e-6)


def test_features_feast_and_mlflow_artefacts(built: tuple[Path, str]) -> None:
    root, _ = built
    features = storage.read(storage.table_path("ventas", "features", "customer_features"))
    assert features.height > 0
    assert (root / "feast" / "registry.db").exists()
    assert (root / "feast" / "online_store.db").exists()
    from lakehouse.features import online_features

    latest = features.sort("event_timestamp").tail(50)
    customer = int(latest["customer_id"][0])
    online = online_features("churn_v1", [customer])  # the latest snapshot is online
    expected = features.filter(pl.col("customer_id") == customer).sort("event_timestamp").tail(1)
    assert online["total_purchases_30d"][0] == pytest.approx(expected["total_purchases_30d"][0])

    import mlflow

    from models.churn import EXPERIMENT, configure_mlflow

    configure_mlflow()
    from models.registry import champion

    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert len(runs) == 6
    assert set(runs["tags.feature_service"]) == {"churn_v1", "churn_v2"}
    assert (runs["tags.scale"] == "tiny").all()
    assert runs["metrics.roc_auc"].between(0, 1).all()
    best = runs.loc[runs["metrics.roc_auc"].idxmax()]
    assert champion().run_id == best["run_id"]
    model = mlflow.pyfunc.load_model(best["tags.model_uri"])
    assert model.metadata.signature is not None


def test_status_lists_tables_and_runs(built: tuple[Path, str]) -> None:
    root, _ = built
    env = {**os.environ, "MESH_DATA_DIR": str(root), "COLUMNS": "200"}
    out = subprocess.run([*MESH, "status"], env=env, capture_output=True, text=True, check=True)
    for needle in ("scale tiny", "daily_revenue", "customer_features", "train", "generate", "GiB"):
        assert needle in out.stdout
    # Each journal entry carries the process's peak memory when the step finished.
    entries = [json.loads(f.read_text()) for f in (root / "runs").glob("*.json")]
    assert entries and all(e["peak_rss_mib"] > 50 for e in entries)


def test_serve_answers_daily_revenue_from_the_gold_table(built: tuple[Path, str]) -> None:
    root, _ = built
    port = _free_port()
    env = {**os.environ, "MESH_DATA_DIR": str(root)}
    proc = subprocess.Popen([*MESH, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/health", proc).status_code == 200
        revenue = storage.read(storage.table_path("ventas", "gold", "daily_revenue"))
        row = revenue.filter(pl.col("region") == "EU").sort("date").row(10, named=True)
        day: date = row["date"]
        created = subprocess.run([*MESH, "keys", "create", "ventas-service"], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
        key = re.search(r"mesh_\S+", created.stdout).group(0)
        url = f"http://127.0.0.1:{port}/ventas/v2/daily-revenue"
        params = {"date": day.isoformat(), "region": "EU"}
        assert httpx.get(url, params=params).status_code == 401
        r = httpx.get(url, params=params, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        item = r.json()["items"][0]
        assert item["revenue_net"] == pytest.approx(row["revenue_net"])
        assert item["transactions_count"] == row["transactions_count"]
        docs = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert "/ventas/v2/daily-revenue" in docs["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_server_starts(built: tuple[Path, str]) -> None:
    root, _ = built
    port = _free_port()
    env = {**os.environ, "MESH_DATA_DIR": str(root)}
    proc = subprocess.Popen([*MESH, "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/_stcore/health", proc)
        assert health.status_code == 200 and health.text == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tour_notebook_runs_with_papermill(built: tuple[Path, str], tmp_path: Path) -> None:
    import papermill

    root, _ = built
    out = tmp_path / "tour.ipynb"
    papermill.execute_notebook(
        str(PROJECT_ROOT / "notebooks" / "01_mesh_tour.ipynb"),
        str(out),
        parameters={"data_dir": str(root), "build": False},
        kernel_name="python3",
        cwd=str(PROJECT_ROOT / "notebooks"),
        progress_bar=False,
    )
    assert "tour complete" in out.read_text()
