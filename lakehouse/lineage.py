"""OpenLineage events for every domain pipeline step: START, then COMPLETE or FAIL.

Naming. Jobs live in the namespace "mesh" and are called "<domain>.<layer>.<table>" (one job per
step). A dataset is named "<domain>/<layer>/<table>" in the namespace `file://<lakehouse dir>`,
so namespace + "/" + name is the table's real location, the way `s3://<bucket>` + key names an
object; moving the lakehouse to a bucket changes the namespace only, and the owning domain is
always the first path segment of the name, cross-domain reads included.

Transport. With no OpenLineage configuration the client's `file` transport writes one JSON file
per event under `data/lineage/` (not one appended jsonl: a file per event is written whole, and
parallel pipelines never interleave lines). Setting `OPENLINEAGE_URL`,
`OPENLINEAGE__TRANSPORT__TYPE` or `OPENLINEAGE_CONFIG` hands configuration to the client's own
environment handling (e.g. HTTP to Marquez); `OPENLINEAGE_DISABLED=true` emits nothing.

Lineage never breaks a data write: emission errors are logged as warnings, unless
`MESH_LINEAGE_STRICT=1` (tests) asks for them to be raised.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_metrics_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.uuid import generate_new_uuid

from lakehouse import storage
from lakehouse.config import get_settings

log = logging.getLogger(__name__)

JOB_NAMESPACE = "mesh"
PRODUCER = "urn:mesh-lakehouse:lakehouse.lineage"
FILE_PREFIX = "ol"
# Any of these means the operator configured OpenLineage the standard way; we then step aside.
ENV_SWITCHES = ("OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT__TYPE", "OPENLINEAGE_CONFIG")
# The client copies OPENLINEAGE_URL into these variables itself; they must not change the cache key.
_CLIENT_ALIASES = "OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__"


@dataclass(frozen=True)
class DatasetRef:
    """One Delta table of the mesh, as lineage names it."""

    domain: str
    layer: str
    table: str

    @property
    def name(self) -> str:
        """Path-like dataset name, e.g. 'ventas/gold/daily_revenue'."""
        return f"{self.domain}/{self.layer}/{self.table}"

    @property
    def namespace(self) -> str:
        """The lakehouse root as a file URI: the datasource every table lives in."""
        return dataset_namespace()


def dataset_namespace() -> str:
    """`file://` URI of the lakehouse directory in force."""
    return get_settings().lakehouse_dir.resolve().as_uri()


def _strict() -> bool:
    return os.environ.get("MESH_LINEAGE_STRICT", "").strip().lower() in ("1", "true", "yes")


def _guard(what: str, action: Callable[[], Any]) -> Any:
    """Run a lineage action; failures become warnings so the data write goes on."""
    try:
        return action()
    except Exception as exc:
        if _strict():
            raise
        log.warning("OpenLineage %s failed (data is unaffected): %s", what, exc)
        return None


def _schema_facet(
    schema: pl.Schema, descriptions: Mapping[str, str] | None
) -> schema_dataset.SchemaDatasetFacet:
    notes = descriptions or {}
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=col, type=str(dtype), description=notes.get(col)
        )
        for col, dtype in schema.items()
    ]
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def _metrics(df: pl.DataFrame | pl.LazyFrame) -> tuple[int, dict[str, int]]:
    """Row count and null count per column, from one (streaming) select over the frame."""
    counts = df.lazy().select(pl.len().alias("__rows__"), pl.all().null_count())
    row = counts.collect(engine="streaming").row(0, named=True)
    rows = row.pop("__rows__")
    return int(rows), {col: int(n) for col, n in row.items()}


@dataclass
class LineageRun:
    """One tracked step: collects inputs and outputs, then becomes the run's events."""

    job: str
    domain: str
    owner: str | None = None
    run_id: str = field(default_factory=lambda: str(generate_new_uuid()))
    parent: tuple[str, str] | None = None  # (parent job name, parent run id)
    inputs: list[InputDataset] = field(default_factory=list)
    outputs: list[OutputDataset] = field(default_factory=list)

    def input(
        self,
        ref: DatasetRef,
        df: pl.DataFrame | pl.LazyFrame | None = None,
        version: int | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        """Declare a table the step read; a DataFrame adds row and null counts."""
        dataset = _guard(f"input {ref.name}", lambda: self._input(ref, df, version, descriptions))
        self.inputs.append(dataset or InputDataset(namespace=ref.namespace, name=ref.name))

    def output(
        self,
        ref: DatasetRef,
        df: pl.DataFrame | pl.LazyFrame,
        version: int | None,
        column_lineage: dict[str, list[tuple[DatasetRef, str]]] | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        """Declare a table the step wrote, its Delta version and where its columns came from."""
        dataset = _guard(
            f"output {ref.name}",
            lambda: self._output(ref, df, version, column_lineage, descriptions),
        )
        self.outputs.append(dataset or OutputDataset(namespace=ref.namespace, name=ref.name))

    def _input(
        self,
        ref: DatasetRef,
        df: pl.DataFrame | pl.LazyFrame | None,
        version: int | None,
        descriptions: Mapping[str, str] | None,
    ) -> InputDataset:
        facets: dict[str, Any] = {}
        input_facets: dict[str, Any] = {}
        if version is None:
            # The step read the table as it is now; its current version is what it saw.
            version = storage.version(storage.table_path(ref.domain, ref.layer, ref.table))
        if version is not None:
            facets["version"] = _version_facet(version)
        if isinstance(df, pl.LazyFrame):
            # Schema only: counting rows or nulls would mean a second scan of the table.
            facets["schema"] = _schema_facet(df.collect_schema(), descriptions)
        elif isinstance(df, pl.DataFrame):
            facets["schema"] = _schema_facet(df.schema, descriptions)
            rows, nulls = _metrics(df)
            input_facets["dataQualityMetrics"] = (
                data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                    rowCount=rows,
                    columnMetrics={
                        col: data_quality_metrics_input_dataset.ColumnMetrics(nullCount=n)
                        for col, n in nulls.items()
                    },
                    producer=PRODUCER,
                )
            )
        return InputDataset(
            namespace=ref.namespace, name=ref.name, facets=facets, inputFacets=input_facets
        )

    def _output(
        self,
        ref: DatasetRef,
        df: pl.DataFrame | pl.LazyFrame,
        version: int | None,
        column_lineage: dict[str, list[tuple[DatasetRef, str]]] | None,
        descriptions: Mapping[str, str] | None,
    ) -> OutputDataset:
        rows, nulls = _metrics(df)
        facets: dict[str, Any] = {
            "schema": _schema_facet(df.collect_schema(), descriptions),
            # The spec has no output-only quality facet; the dataset-level one serves outputs.
            "dataQualityMetrics": data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
                rowCount=rows,
                columnMetrics={
                    col: data_quality_metrics_dataset.ColumnMetrics(nullCount=n)
                    for col, n in nulls.items()
                },
                producer=PRODUCER,
            ),
        }
        if version is not None:
            facets["version"] = _version_facet(version)
        if self.owner:
            facets["ownership"] = ownership_dataset.OwnershipDatasetFacet(
                owners=[ownership_dataset.Owner(name=_owner_urn(self.owner), type="DOMAIN_OWNER")],
                producer=PRODUCER,
            )
        if column_lineage:
            facets["columnLineage"] = _column_lineage_facet(column_lineage)
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=rows, producer=PRODUCER
        )
        return OutputDataset(
            namespace=ref.namespace,
            name=ref.name,
            facets=facets,
            outputFacets={"outputStatistics": stats},
        )

    def event(self, state: RunState, error: BaseException | None = None) -> RunEvent:
        """The OpenLineage RunEvent for this run in the given state."""
        run_facets: dict[str, Any] = {}
        if self.parent:
            parent_job, parent_id = self.parent
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent_id),
                job=parent_run.Job(namespace=JOB_NAMESPACE, name=parent_job),
                producer=PRODUCER,
            )
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}",
                programmingLanguage="PYTHON",
                stackTrace="".join(traceback.format_exception(error)),
                producer=PRODUCER,
            )
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="MESH",
                jobType="DOMAIN_PIPELINE",
                producer=PRODUCER,
            )
        }
        if self.owner:
            job_facets["ownership"] = ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=_owner_urn(self.owner), type="DOMAIN_OWNER")],
                producer=PRODUCER,
            )
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=JOB_NAMESPACE, name=self.job, facets=job_facets),
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            producer=PRODUCER,
        )


# The run a nested track() reports as its parent.
_current: ContextVar[LineageRun | None] = ContextVar("lineage_run", default=None)


def _version_facet(version: int) -> dataset_version_dataset.DatasetVersionDatasetFacet:
    return dataset_version_dataset.DatasetVersionDatasetFacet(
        datasetVersion=str(version), producer=PRODUCER
    )


def _owner_urn(owner: str) -> str:
    # The spec recommends URNs (team:data); domain.yml holds the team's email.
    return owner if ":" in owner else f"team:{owner}"


def _column_lineage_facet(
    mapping: dict[str, list[tuple[DatasetRef, str]]],
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    fields = {
        out_col: column_lineage_dataset.Fields(
            inputFields=[
                column_lineage_dataset.InputField(namespace=ref.namespace, name=ref.name, field=col)
                for ref, col in sources
            ]
        )
        for out_col, sources in mapping.items()
    }
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def _disabled() -> bool:
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"


def lineage_client() -> OpenLineageClient | None:
    """The client in force: env-configured if OpenLineage env is set, else file transport."""
    if _disabled():
        return None
    env = tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.startswith("OPENLINEAGE") and not k.startswith(_CLIENT_ALIASES)
        )
    )
    return _client(str(get_settings().lineage_dir.resolve()), env)


@lru_cache(maxsize=8)
def _client(lineage_dir: str, env: tuple[tuple[str, str], ...]) -> OpenLineageClient:
    if any(k in ENV_SWITCHES and v for k, v in env):
        return OpenLineageClient()
    folder = Path(lineage_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # debug_mode names each file <prefix>-<time>-<job>-<eventType>.json and indents it: readable
    # in data/lineage/, and two processes writing in the same microsecond no longer collide.
    config = FileConfig(log_file_path=str(folder / FILE_PREFIX), append=False, debug_mode=True)
    return OpenLineageClient(transport=FileTransport(config))


def _emit(run: LineageRun, state: RunState, error: BaseException | None = None) -> None:
    def send() -> None:
        client = lineage_client()
        if client is not None:
            client.emit(run.event(state, error))

    _guard(f"{state.value} event of {run.job}", send)


@contextmanager
def track(
    job: str,
    domain: str,
    owner: str | None = None,
    parent_run_id: str | None = None,
    *,
    parent_job: str | None = None,
) -> Iterator[LineageRun]:
    """Emit START now, then COMPLETE with the declared datasets, or FAIL and re-raise."""
    if not job.startswith(f"{domain}."):
        raise ValueError(f"job {job!r} must start with its domain, e.g. '{domain}.gold.<table>'")
    enclosing = _current.get()
    parent: tuple[str, str] | None = None
    if parent_run_id is not None:
        uuid.UUID(parent_run_id)  # a malformed id fails here, not in a lineage backend
        parent = (parent_job or f"{domain}.pipeline", parent_run_id)
    elif enclosing is not None:
        parent = (enclosing.job, enclosing.run_id)
    run = LineageRun(job=job, domain=domain, owner=owner, parent=parent)
    _emit(run, RunState.START)
    token = _current.set(run)
    try:
        yield run
    except Exception as exc:
        _emit(run, RunState.FAIL, exc)
        raise
    except BaseException as exc:
        # Ctrl-C or exit: the step was stopped, not broken.
        _emit(run, RunState.ABORT, exc)
        raise
    else:
        _emit(run, RunState.COMPLETE)
    finally:
        _current.reset(token)


def read_events(folder: Path | None = None) -> list[dict[str, Any]]:
    """Events the file transport wrote, oldest first; unreadable files are skipped."""
    folder = folder or get_settings().lineage_dir
    events: list[tuple[str, str, dict[str, Any]]] = []
    for path in sorted(folder.glob(f"{FILE_PREFIX}-*.json")):
        try:
            event = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            # A file another process is still writing; it will be complete on the next read.
            log.warning("skipping unreadable lineage file %s: %s", path, exc)
            continue
        events.append((_utc(event.get("eventTime")), path.name, event))
    return [event for *_, event in sorted(events, key=lambda e: (e[0], e[1]))]


def _utc(stamp: object) -> str:
    """Sortable UTC form of an eventTime ('' when missing, so such events sort first)."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone(UTC).isoformat()
    except ValueError:
        return ""
