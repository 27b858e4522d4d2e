"""Feast glue: the central feature store over feature_repo/, bound to the current data directory.

feature_store.yaml takes its paths from ${MESH_DATA_DIR} (Feast runs os.path.expandvars on the
file) and the definitions compute their Delta paths from the settings, so one setting moves the
registry, the online store and the offline tables together. Feast's DuckDB offline store reads
DeltaFormat sources with DuckDB's `delta` extension, which DuckDB would download; we install the
copy shipped by duckdb-ext-delta first and turn a download attempt into an error with the fix.

Feast is imported inside functions only: importing it costs seconds and the CLI must stay fast.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import polars as pl

from lakehouse import storage
from lakehouse.clock import mesh_now
from lakehouse.config import get_settings
from lakehouse.duck import DeltaExtensionMissingError, ensure_delta_extension

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

FEATURE_STORE_YAML = "feature_store.yaml"
EVENT_TIMESTAMP = "event_timestamp"
# Start of a full materialization: everything the offline store holds.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FeatureStoreError(RuntimeError):
    """The feature store is not set up for the request (missing repo, registry or table)."""


def feast_env() -> dict[str, str]:
    """Environment the feast CLI needs so feature_store.yaml resolves to the current data dir."""
    return {"MESH_DATA_DIR": str(get_settings().data_dir.resolve())}


def feature_store() -> FeatureStore:
    """A Feast FeatureStore over feature_repo/ whose state lives under the current data dir."""
    settings = get_settings()
    repo = settings.feature_repo
    if not (repo / FEATURE_STORE_YAML).exists():
        raise FeatureStoreError(
            f"no {FEATURE_STORE_YAML} in {repo}; set MESH_FEATURE_REPO to the Feast repository"
        )
    ensure_delta_extension()
    os.environ.update(feast_env())
    # Feast's SQLite store creates only the last directory level of its file.
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


@contextmanager
def _repo_importable(repo: Path, names: Sequence[str]) -> Iterator[None]:
    """Make the repo's files importable as top-level modules (as `feast apply` does) and forget
    them afterwards, so every load re-reads the definitions against the current settings and a
    same-named module from elsewhere is neither used nor lost."""

    def loaded_from_repo() -> list[str]:
        return [
            name
            for name, module in sys.modules.items()
            if (getattr(module, "__file__", None) or "").startswith(f"{repo}{os.sep}")
        ]

    for name in loaded_from_repo():
        del sys.modules[name]
    shadowed = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for name in loaded_from_repo():
            del sys.modules[name]
        sys.modules.update(shadowed)


def load_definitions(repo: Path | None = None) -> RepoContents:
    """Import every definition file of the Feast repo afresh and collect its Feast objects."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView, Project
    from feast.data_source import DataSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.permissions.permission import Permission
    from feast.repo_contents import RepoContents
    from feast.repo_operations import get_repo_files
    from feast.stream_feature_view import StreamFeatureView

    repo = (repo or get_settings().feature_repo).resolve()
    os.environ.update(feast_env())
    contents = RepoContents(
        projects=[],
        data_sources=[],
        feature_views=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[],
        feature_services=[],
        permissions=[],
    )
    # Subclasses before their bases: a StreamFeatureView is also a FeatureView.
    buckets: list[tuple[type, list[Any]]] = [
        (Project, contents.projects),
        (DataSource, contents.data_sources),
        (StreamFeatureView, contents.stream_feature_views),
        (FeatureView, contents.feature_views),
        (OnDemandFeatureView, contents.on_demand_feature_views),
        (Entity, contents.entities),
        (FeatureService, contents.feature_services),
        (Permission, contents.permissions),
    ]

    def add(obj: Any) -> None:
        for kind, bucket in buckets:
            if isinstance(obj, kind):
                if not any(obj is seen for seen in bucket):
                    bucket.append(obj)
                return

    names = [".".join(f.relative_to(repo).with_suffix("").parts) for f in get_repo_files(repo)]
    with _repo_importable(repo, names):
        for name in names:
            module = importlib.import_module(name)
            for obj in vars(module).values():
                add(obj)
                if isinstance(obj, FeatureView) and obj.batch_source is not None:
                    add(obj.batch_source)
    contents.entities.append(DUMMY_ENTITY)
    return contents


def apply() -> list[str]:
    """Register the repo's definitions (and drop ones removed from it); returns what is registered
    as "kind:name"."""
    from feast import Project
    from feast.repo_operations import extract_objects_for_apply_delete

    store = feature_store()
    repo = load_definitions()
    if not repo.projects:
        # As `feast apply` does: the project named in feature_store.yaml gets a registry entry.
        repo.projects.append(Project(name=store.project, description="The mesh's features"))
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        store.project, store.registry, repo
    )
    store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    kinds = {
        "entity": repo.entities,
        "data_source": repo.data_sources,
        "feature_view": repo.feature_views + repo.stream_feature_views,
        "on_demand_feature_view": repo.on_demand_feature_views,
        "feature_service": repo.feature_services,
    }
    return sorted(
        f"{kind}:{obj.name}"
        for kind, objs in kinds.items()
        for obj in objs
        if not obj.name.startswith("__")
    )


@contextmanager
def _offline_errors() -> Iterator[None]:
    """Turn DuckDB's failed extension download (no network) into an error that says the fix."""
    import duckdb

    try:
        yield
    except duckdb.IOException as exc:
        if "download extension" not in str(exc):
            raise
        raise DeltaExtensionMissingError(
            "DuckDB tried to download its delta extension, and this machine is offline. "
            "Install the packaged one with `pip install duckdb-ext-delta==1.4.4.*` and go through "
            "lakehouse.features.feature_store(), which copies it to ~/.duckdb/extensions "
            f"(DuckDB said: {exc})"
        ) from exc


def _delta_sources(store: FeatureStore, view_names: Sequence[str]) -> list[Path]:
    from feast.data_format import DeltaFormat
    from feast.infra.offline_stores.file_source import FileSource

    paths = []
    for name in view_names:
        source = store.get_feature_view(name).batch_source
        if isinstance(source, FileSource) and isinstance(source.file_format, DeltaFormat):
            paths.append(Path(source.path))
    return paths


def _require_tables(store: FeatureStore, view_names: Sequence[str]) -> None:
    for path in _delta_sources(store, view_names):
        if not storage.exists(path):
            raise storage.TableNotFoundError(
                path, hint="build the feature table first (`mesh build`, or the domain's features)"
            )


def _feature_service(store: FeatureStore, name: str) -> Any:
    from feast.errors import FeastObjectNotFoundException

    try:
        return store.get_feature_service(name)
    except (FeastObjectNotFoundException, FileNotFoundError) as exc:
        raise FeatureStoreError(
            f"feature service {name!r} is not registered in {store.config.registry.path}; "
            "run lakehouse.features.apply() (or `feast apply`) first"
        ) from exc


def _utc_entity_frame(entity_df: pd.DataFrame | pl.DataFrame) -> pd.DataFrame:
    frame = entity_df.to_pandas() if isinstance(entity_df, pl.DataFrame) else entity_df.copy()
    if EVENT_TIMESTAMP not in frame.columns:
        raise ValueError(
            f"entity_df needs an {EVENT_TIMESTAMP!r} column (the as-of time of each row); "
            f"it has {list(frame.columns)}"
        )
    ts = pd.to_datetime(frame[EVENT_TIMESTAMP])
    frame[EVENT_TIMESTAMP] = (
        ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    )
    return frame


def historical_features(
    feature_service: str, entity_df: pd.DataFrame | pl.DataFrame
) -> pd.DataFrame:
    """Point-in-time training rows: entity_df's columns plus the service's features as of each
    row's event_timestamp (naive timestamps are taken as UTC)."""
    frame = _utc_entity_frame(entity_df)
    store = feature_store()
    service = _feature_service(store, feature_service)
    _require_tables(store, [p.name for p in service.feature_view_projections])
    with _offline_errors():
        return (
            store.get_historical_features(entity_df=frame, features=service)
            .to_df()
            .reset_index(drop=True)
        )


def materialize(
    end: datetime | None = None,
    incremental: bool = False,
    views: Sequence[str] | None = None,
) -> dict[str, tuple[datetime, datetime]]:
    """Load the latest feature values up to `end` (default: the mesh clock, the newest ingestion
    time in the lakehouse) into the SQLite online store;
    returns each view's materialized interval. Incremental runs continue from the previous end;
    a view never materialized gets its whole history."""
    end = end or mesh_now() or datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    store = feature_store()
    known = [fv for fv in store.list_feature_views() if fv.online]
    unknown = sorted(set(views or ()) - {fv.name for fv in known})
    if unknown:
        raise FeatureStoreError(
            f"no online feature view {unknown}; registered: {', '.join(fv.name for fv in known)}"
        )
    views = [fv for fv in known if views is None or fv.name in views]
    _require_tables(store, [fv.name for fv in views])
    fresh = [fv.name for fv in views if not incremental or not fv.materialization_intervals]
    rest = [fv.name for fv in views if fv.name not in fresh]
    with _offline_errors():
        if fresh:
            store.materialize(start_date=EPOCH, end_date=end, feature_views=fresh)
        if rest:
            store.materialize_incremental(end_date=end, feature_views=rest)
    done = {}
    for fv in store.list_feature_views():
        if fv.name in fresh or fv.name in rest:
            done[fv.name] = fv.materialization_intervals[-1]
    return done


def online_features(service: str, customer_ids: Sequence[int]) -> dict[str, list[Any]]:
    """Latest materialized feature values of a service for the given customers, by column."""
    store = feature_store()
    rows = [{"customer_id": int(c)} for c in customer_ids]
    return store.get_online_features(
        features=_feature_service(store, service), entity_rows=rows
    ).to_dict()


@dataclass
class SkewReport:
    """Online values compared with offline point-in-time values at the materialization time."""

    service: str
    as_of: datetime
    entities: int
    mismatches: dict[str, int]
    expired_online: int  # online still serves a value the offline store dropped by TTL
    examples: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not any(self.mismatches.values())


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    return a == b


def skew(service: str = "churn_v2", sample: int = 200, seed: int = 0) -> SkewReport:
    """Compare online features of a sample of customers with the offline point-in-time values
    at the end of the last materialization (train/serve skew check)."""
    from lakehouse.pit import training_set

    store = feature_store()
    fs = _feature_service(store, service)
    views = [store.get_feature_view(p.name) for p in fs.feature_view_projections]
    if any(not fv.materialization_intervals for fv in views):
        raise FeatureStoreError(
            f"{service} has views that were never materialized; run `mesh features materialize`"
        )
    as_of = min(fv.materialization_intervals[-1][1] for fv in views)
    sources = _delta_sources(store, [fv.name for fv in views])
    ids = (
        pl.concat([storage.scan(path).select("customer_id").unique() for path in sources])
        .unique()
        .sort("customer_id")
        .collect()
    )
    chosen = ids.sample(n=min(sample, ids.height), seed=seed)["customer_id"].sort().to_list()
    entity_df = pl.DataFrame(
        {"customer_id": chosen, EVENT_TIMESTAMP: [as_of] * len(chosen)},
        schema={"customer_id": pl.Int64, EVENT_TIMESTAMP: pl.Datetime("us", "UTC")},
    )
    offline = training_set(service, entity_df).sort("customer_id")
    online = online_features(service, chosen)
    features = [c for c in offline.columns if c not in ("customer_id", EVENT_TIMESTAMP)]
    mismatches = dict.fromkeys(features, 0)
    examples: list[dict[str, Any]] = []
    expired = 0
    for i, row in enumerate(offline.iter_rows(named=True)):
        stale = all(row[f] is None for f in features) and any(
            online[f][i] is not None for f in features
        )
        if stale:
            expired += 1
            continue
        for f in features:
            if not _same(row[f], online[f][i]):
                mismatches[f] += 1
                if len(examples) < 10:
                    examples.append(
                        {"customer_id": row["customer_id"], "feature": f,
                         "offline": row[f], "online": online[f][i]}
                    )  # fmt: skip
    return SkewReport(service, as_of, len(chosen), mismatches, expired, examples)


def serving_store() -> FeatureStore:
    """A FeatureStore kept for the life of the process (online reads are per request)."""
    return _serving_store(str(get_settings().data_dir.resolve()))


@lru_cache(maxsize=4)
def _serving_store(data_dir: str) -> FeatureStore:
    return feature_store()


class OnlineReader:
    """Per-request online reads for one feature service, resolved once: the service's views are
    looked up in the registry at construction, and each read goes straight to Feast's online
    store (`provider.online_read`), skipping the SDK's per-call registry parsing (~25 ms)."""

    def __init__(self, service: str) -> None:
        store = serving_store()
        fs = _feature_service(store, service)
        self._store = store
        self._provider = store._get_provider()
        self._views = [
            (store.get_feature_view(p.name), [f.name for f in p.features])
            for p in fs.feature_view_projections
        ]

    def read(self, customer_id: int) -> tuple[dict[str, Any], list[datetime]]:
        """One customer's values (keys included) and the snapshot times they come from; no
        times means the online store knows nothing about the customer."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=customer_id)])
        values: dict[str, Any] = {"customer_id": customer_id}
        stamps: set[datetime] = set()
        for view, names in self._views:
            ((stamp, found),) = self._provider.online_read(self._store.config, view, [key], names)
            for name in names:
                proto = (found or {}).get(name)
                values[name] = None if proto is None else feast_value_type_to_python_type(proto)
            if stamp is not None:
                stamps.add(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
        return values, sorted(stamps)


@lru_cache(maxsize=16)
def online_reader(service: str, data_dir: str) -> OnlineReader:
    """A cached OnlineReader per service and data directory."""
    return OnlineReader(service)


def online_features_with_time(
    service: str, customer_id: int
) -> tuple[dict[str, Any], list[datetime]]:
    """One customer's online feature values (keys included) and their snapshot times."""
    data_dir = str(get_settings().data_dir.resolve())
    return online_reader(service, data_dir).read(int(customer_id))
