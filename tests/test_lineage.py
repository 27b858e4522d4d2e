"""OpenLineage events of tracked steps: content, spec validity, file/HTTP/disabled transports.

The spec schemas under tests/fixtures/openlineage/ are verbatim copies of OpenLineage's public
JSON Schema files (Apache-2.0, github.com/OpenLineage/OpenLineage, spec/ and website/static/spec/),
each named after its `$id`. openlineage-python does not ship them. Where the exact version the
client stamps into `_schemaURL` is not vendored, `nearest_spec` validates against the newest
vendored version of the same document, preferring the same major version (SchemaVer: minor and
patch revisions only add optional fields); dropping in the exact file makes it take precedence.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from jsonschema import ValidationError
from openlineage_spec import _vendored, facets, nearest_spec, validate_event

from lakehouse import lineage, storage
from lakehouse.lineage import DatasetRef, read_events, track

SALES_HISTORY = DatasetRef("ventas", "gold", "customer_transaction_history")
CAMPAIGNS = DatasetRef("marketing", "curated", "campaigns")
SEGMENTS = DatasetRef("marketing", "gold", "customer_segments")
OWNER = "campaigns-team@company.com"


@pytest.fixture(autouse=True)
def lineage_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OpenLineage config from the developer's shell; emission errors raise."""
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MESH_LINEAGE_STRICT", "1")
    lineage._client.cache_clear()
    yield
    # The client copies OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__... variables itself.
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[key]
    lineage._client.cache_clear()


def _history() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4],
            "customer_id": [10, 10, 11, None],
            "amount_usd": [5.0, None, 7.5, None],
        }
    )


def _segments() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [10, 11, 12], "segment": ["loyal", None, "new"]})


def _run_step() -> str:
    """Marketing builds segments from ventas' gold product; returns the run id."""
    path = storage.table_path(*vars(SALES_HISTORY).values())
    storage.write(_history(), path)
    storage.write(_history(), path, mode="overwrite")  # ventas has published twice: version 1
    campaigns = pl.LazyFrame({"campaign_id": [1], "budget": [100.0]})
    with track("marketing.gold.customer_segments", "marketing", owner=OWNER) as run:
        run.input(SALES_HISTORY, storage.read(path))
        run.input(CAMPAIGNS, campaigns, version=4)
        run.output(
            SEGMENTS,
            _segments(),
            version=3,
            column_lineage={
                "customer_id": [(SALES_HISTORY, "customer_id")],
                "segment": [(SALES_HISTORY, "amount_usd"), (SALES_HISTORY, "order_id")],
            },
            descriptions={"segment": "Marketing segment of the customer"},
        )
    return run.run_id


def test_tracked_step_writes_valid_start_and_complete_files(data_dir: Path) -> None:
    run_id = _run_step()
    files = sorted((data_dir / "lineage").iterdir())
    assert len(files) == 2
    assert files[0].name.endswith("-marketing.gold.customer_segments-START.json")
    assert files[1].name.endswith("-marketing.gold.customer_segments-COMPLETE.json")
    start, complete = read_events()
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"] == run_id
    for event in (start, complete):
        validate_event(event)
        assert event["job"]["namespace"] == "mesh"
        assert event["job"]["name"] == "marketing.gold.customer_segments"
        job_type = event["job"]["facets"]["jobType"]
        assert (job_type["processingType"], job_type["integration"], job_type["jobType"]) == (
            "BATCH",
            "MESH",
            "DOMAIN_PIPELINE",
        )
        owners = event["job"]["facets"]["ownership"]["owners"]
        assert owners == [{"name": f"team:{OWNER}", "type": "DOMAIN_OWNER"}]


def test_complete_event_describes_inputs_and_outputs(data_dir: Path) -> None:
    _run_step()
    complete = read_events()[-1]
    namespace = (data_dir / "lakehouse").resolve().as_uri()
    inputs = {d["name"]: d for d in complete["inputs"]}
    assert set(inputs) == {
        "ventas/gold/customer_transaction_history",
        "marketing/curated/campaigns",
    }
    assert {d["namespace"] for d in complete["inputs"] + complete["outputs"]} == {namespace}

    sales = inputs["ventas/gold/customer_transaction_history"]
    assert sales["facets"]["version"]["datasetVersion"] == "1"  # looked up from the Delta log
    metrics = sales["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 4
    assert {c: m["nullCount"] for c, m in metrics["columnMetrics"].items()} == {
        "order_id": 0,
        "customer_id": 1,
        "amount_usd": 2,
    }
    campaigns = inputs["marketing/curated/campaigns"]
    assert campaigns["facets"]["version"]["datasetVersion"] == "4"
    assert [f["name"] for f in campaigns["facets"]["schema"]["fields"]] == ["campaign_id", "budget"]
    assert "inputFacets" not in campaigns or not campaigns["inputFacets"]  # lazy: not scanned

    (out,) = complete["outputs"]
    assert out["name"] == "marketing/gold/customer_segments"
    assert out["facets"]["version"]["datasetVersion"] == "3"
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert out["facets"]["dataQualityMetrics"]["columnMetrics"]["segment"]["nullCount"] == 1
    fields = [
        (f["name"], f["type"], f.get("description")) for f in out["facets"]["schema"]["fields"]
    ]
    assert fields == [
        ("customer_id", "Int64", None),
        ("segment", "String", "Marketing segment of the customer"),
    ]
    assert out["facets"]["ownership"]["owners"][0]["name"] == f"team:{OWNER}"


def test_column_lineage_names_the_producing_domain(data_dir: Path) -> None:
    _run_step()
    fields = read_events()[-1]["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert set(fields) == {"customer_id", "segment"}
    sources = {(f["name"], f["field"]) for f in fields["segment"]["inputFields"]}
    assert sources == {
        ("ventas/gold/customer_transaction_history", "amount_usd"),
        ("ventas/gold/customer_transaction_history", "order_id"),
    }


def test_failing_step_emits_fail_with_the_message_and_reraises(data_dir: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="ventas product is stale"),
        track("marketing.gold.attribution_model", "marketing", owner=OWNER) as run,
    ):
        run.input(SALES_HISTORY, _history(), version=7)
        raise RuntimeError("ventas product is stale")
    start, fail = read_events()
    assert [start["eventType"], fail["eventType"]] == ["START", "FAIL"]
    for event in (start, fail):
        validate_event(event)
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "RuntimeError: ventas product is stale"
    assert error["programmingLanguage"] == "PYTHON"
    assert "ventas product is stale" in error["stackTrace"]
    assert [d["name"] for d in fail["inputs"]] == ["ventas/gold/customer_transaction_history"]
    assert fail["outputs"] == []


def test_nested_step_reports_its_parent_run(data_dir: Path) -> None:
    with track("ventas.pipeline", "ventas") as outer, track("ventas.gold.daily_revenue", "ventas"):
        pass
    child = next(e for e in read_events() if e["job"]["name"] == "ventas.gold.daily_revenue")
    validate_event(child)
    parent = child["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == outer.run_id
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("mesh", "ventas.pipeline")


def test_validator_rejects_broken_events(data_dir: Path) -> None:
    with pytest.raises(KeyError), track("ventas.gold.daily_revenue", "ventas"):
        raise KeyError("x")
    fail = read_events()[-1]
    no_run_id = json.loads(json.dumps(fail))
    del no_run_id["run"]["runId"]
    with pytest.raises(ValidationError):
        validate_event(no_run_id)
    bad_facet = json.loads(json.dumps(fail))
    del bad_facet["run"]["facets"]["errorMessage"]["programmingLanguage"]
    with pytest.raises(ValidationError):
        validate_event(bad_facet)


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A loopback HTTP endpoint recording the events posted to it."""
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def test_openlineage_url_switches_to_http_without_files(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    lineage_server: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    url, received = lineage_server
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    run_id = _run_step()
    assert [path for path, _ in received] == ["/api/v1/lineage", "/api/v1/lineage"]
    events = [event for _, event in received]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {run_id}
    for event in events:
        validate_event(event)
    assert not (data_dir / "lineage").exists() or not any((data_dir / "lineage").iterdir())


def test_disabled_emits_nothing(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert lineage.lineage_client() is None
    _run_step()
    assert read_events() == []
    assert not (data_dir / "lineage").exists()


def test_emission_failure_does_not_break_the_step(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (data_dir / "lineage").write_text("a file where the lineage folder should be")
    with pytest.raises(OSError), track("ventas.gold.daily_revenue", "ventas"):
        pass
    monkeypatch.delenv("MESH_LINEAGE_STRICT")
    with caplog.at_level(logging.WARNING, logger="lakehouse.lineage"):
        with track("ventas.gold.daily_revenue", "ventas") as run:
            run.output(DatasetRef("ventas", "gold", "daily_revenue"), _segments(), version=0)
        assert "data is unaffected" in caplog.text


def test_read_events_skips_unreadable_files(data_dir: Path) -> None:
    _run_step()
    (data_dir / "lineage" / "ol-000000T000000.000000-partial-START.json").write_text('{"eve')
    assert [e["eventType"] for e in read_events()] == ["START", "COMPLETE"]


def test_job_must_belong_to_its_domain() -> None:
    with pytest.raises(ValueError, match="must start with its domain"), track("gold.x", "ventas"):
        pass


def test_every_facet_the_client_stamps_has_a_vendored_schema(data_dir: Path) -> None:
    _run_step()
    urls = {f["_schemaURL"] for e in read_events() for _, f in facets(e)}
    assert {nearest_spec(u) for u in urls} <= set(_vendored())
