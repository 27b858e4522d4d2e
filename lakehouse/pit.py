"""Point-in-time training sets equal to Feast's get_historical_features, on as-of joins.

Feast 0.67's DuckDB offline store (feast/infra/offline_stores/ibis.py, point_in_time_join) gives
each entity row, per feature view, the feature row with equal join keys, event_timestamp <= the
row's event_timestamp and, when the view has a TTL, event_timestamp + ttl >= the row's timestamp
(inclusive; a ttl of None or 0 means no limit), taking the largest event_timestamp and then the
largest created_timestamp (a null one loses; a tie on both picks an arbitrary row, in Feast as
here). Null keys or timestamps never match, and then the features are null; duplicate entity rows
get the same values. Every datetime column of entity_df is made UTC in microseconds (naive means
UTC, as Feast's coerce_tz_aware does). Columns: entity_df's, then each view's features in service
order, named `feature` or `view__feature`.

Feast range-joins whole tables and ranks the matches with row_number(). Here each view is one
as-of join, in one of two ways:

- packed (integer join keys, the mesh's case): the view's rows inside the entity rows' time window
  are read once; each becomes one int64 that sorts as (keys, event time, position), the event time
  replaced by a small slot number (snapshot tables have few distinct times). One numpy sort of
  those integers, and a Polars join_asof of the entity rows packed the same way, finds each row's
  latest feature row; the position in its low bits fetches the values. Rows tied on keys and
  event time are first ordered by created_timestamp, so the last of them wins;
- DuckDB (any other keys, or keys too wide to pack into 62 bits): an ASOF JOIN over keys and the
  (event, created) times, and a second scan that fetches the values of just the rows found.

Dtypes are the feature tables' own: an Int64 feature with nulls stays Int64 where Feast's to_df()
gives float64. Rows keep entity_df's order (Feast's order is arbitrary).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from lakehouse import storage
from lakehouse.duck import connect

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    from feast import FeatureStore

EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class ViewSpec:
    """One feature view as the join needs it: its Delta table, keys, features and TTL."""

    name: str
    path: Path
    join_keys: Mapping[str, str]  # feature table column -> entity_df column
    features: Sequence[str]
    timestamp_field: str = EVENT_TIMESTAMP
    created_timestamp_column: str | None = "created_timestamp"
    ttl: timedelta | None = None
    field_mapping: Mapping[str, str] = field(default_factory=dict)  # table column -> view column

    def column(self, name: str) -> str:
        """The table column that holds the view's column `name` (Feast's field_mapping)."""
        return next((src for src, dst in self.field_mapping.items() if dst == name), name)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc_entities(entity_df: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    frame = entity_df if isinstance(entity_df, pl.DataFrame) else pl.from_pandas(entity_df)
    if EVENT_TIMESTAMP not in frame.columns:
        raise ValueError(
            f"entity_df needs an {EVENT_TIMESTAMP!r} column (the as-of time of each row); "
            f"it has {frame.columns}"
        )
    if not isinstance(frame.schema[EVENT_TIMESTAMP], pl.Datetime):
        raise TypeError(
            f"entity_df's {EVENT_TIMESTAMP!r} is {frame.schema[EVENT_TIMESTAMP]}, not a datetime; "
            f"parse it first, e.g. pl.col({EVENT_TIMESTAMP!r}).str.to_datetime(time_zone='UTC')"
        )
    # As Feast does for every datetime column: naive means UTC, and DuckDB keeps microseconds.
    return frame.with_columns(
        (
            pl.col(name).dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else pl.col(name).dt.convert_time_zone("UTC")
        ).dt.cast_time_unit("us")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _output_names(views: Sequence[ViewSpec], full_feature_names: bool) -> list[list[str]]:
    names = [[f"{v.name}__{f}" if full_feature_names else f for f in v.features] for v in views]
    flat = [n for view in names for n in view]
    clashes = sorted({n for n in flat if flat.count(n) > 1})
    if clashes:
        raise ValueError(
            f"feature names {clashes} come from more than one view; "
            "pass full_feature_names=True to prefix them with the view name"
        )
    return names


def point_in_time_join(
    entity_df: pl.DataFrame | pd.DataFrame,
    views: Sequence[ViewSpec],
    *,
    full_feature_names: bool = False,
    method: Literal["auto", "asof"] = "auto",
) -> pl.DataFrame:
    """entity_df's rows, each with every view's latest feature values as of its event_timestamp.

    method "auto" packs integer join keys (see the module doc) and uses DuckDB's ASOF join for the
    rest; "asof" always uses DuckDB. Both give the same rows.
    """
    if method not in ("auto", "asof"):
        raise ValueError(f"method must be 'auto' or 'asof', not {method!r}")
    entities = _utc_entities(entity_df)
    names = _output_names(views, full_feature_names)
    taken = sorted(set(entities.columns) & {n for view in names for n in view})
    if taken:
        raise ValueError(f"entity_df columns {taken} have the names of features; rename them")
    key_columns = list(dict.fromkeys(c for v in views for c in v.join_keys.values()))
    for view in views:
        for column in view.join_keys.values():
            if column not in entities.columns:
                raise ValueError(
                    f"entity_df has no column {column!r}, a join key of feature view "
                    f"{view.name!r}; add it (the {column} of each row) to entity_df"
                )
        if not storage.exists(view.path):
            raise storage.TableNotFoundError(
                view.path,
                hint=f"feature view {view.name!r} has no feature table yet; run `mesh build`",
            )
    if not views:
        return entities
    indexed = entities.with_row_index("__row")
    # DuckDB's ASOF join matches a null probe time (Feast matches nothing) and may drop such left
    # rows, so rows without a time stay out of the join and get nulls from the final left join.
    spine = indexed.select(
        "__row",
        *(pl.col(c).alias(f"__e{i}") for i, c in enumerate(key_columns)),
        pl.col(EVENT_TIMESTAMP).alias("__ts"),
    ).filter(pl.col("__ts").is_not_null())
    first, last = spine.select(pl.min("__ts").alias("first"), pl.max("__ts").alias("last")).row(0)
    spines: dict[tuple[str, ...], _Spine | None] = {}
    if method == "auto":
        for view in views:
            entity_keys = tuple(view.join_keys.values())
            if entity_keys not in spines:
                spines[entity_keys] = _Spine.of(indexed, entity_keys)

    def packed(view: ViewSpec, outputs: Sequence[str]) -> pl.DataFrame | None:
        spine = spines.get(tuple(view.join_keys.values()))
        return _packed_view(view, outputs, spine) if spine else None

    # numpy's sort holds one core and releases the GIL: two views at a time, unless they are so
    # big that holding two at once costs more memory than the time it saves is worth.
    small = all(storage.row_count(v.path) <= PARALLEL_MAX_ROWS for v in views)
    with ThreadPoolExecutor(max_workers=PARALLEL_VIEWS if small else 1) as pool:
        columns = list(pool.map(packed, views, names))
    con = None
    try:
        for i, (view, outputs) in enumerate(zip(views, names, strict=True)):
            if columns[i] is not None:
                continue
            if con is None:
                con = _database().cursor()
                # Settings are per cursor. Timestamps compare in UTC, as in Feast. An Arrow scan
                # has no row estimate, so DuckDB would plan the ASOF join as a nested loop, meant
                # for a handful of entity rows (minutes at 100k rows); always use the ASOF operator.
                con.execute("SET TimeZone = 'UTC'; SET asof_loop_join_threshold = 0")
                con.register("spine", spine)
            found = con.sql(_view_sql(view, outputs, key_columns, first, last)).pl()
            aligned = indexed.select("__row").join(
                found, on="__row", how="left", maintain_order="left"
            )
            columns[i] = aligned.drop("__row")
    finally:
        if con is not None:
            con.close()
    return pl.concat([entities, *columns], how="horizontal")


# ------------------------------------------------------------------------ packed integer keys

PACKED_BITS = 62  # keys, event-time slot and row position share one non-negative int64
PARALLEL_VIEWS = 2  # views joined at once; each holds its rows in memory while it joins
PARALLEL_MAX_ROWS = 20_000_000  # feature rows in a view above which views join one at a time


def _bits(count: int) -> int:
    """Bits that hold the numbers 0 .. count - 1."""
    return max(count - 1, 0).bit_length()


def _packable_key(dtype: pl.DataType) -> bool:
    # UInt64 may not fit an int64; floats, strings and the rest go to DuckDB.
    return dtype.is_integer() and dtype != pl.UInt64


@dataclass(frozen=True)
class _Spine:
    """The entity rows that can match (keys and time not null) as int64s, sorted by keys and time:
    the order in which their packed queries are non-decreasing, as join_asof needs them."""

    height: int  # entity rows in all
    rows: np.ndarray  # numbers of the rows that can match, in sorted order
    keys: list[np.ndarray]
    ts: np.ndarray  # epoch microseconds, UTC
    low: list[int]  # each key column's smallest and largest value
    high: list[int]

    @classmethod
    def of(cls, indexed: pl.DataFrame, columns: Sequence[str]) -> _Spine | None:
        if not all(_packable_key(indexed.schema[c]) for c in columns):
            return None
        keys = [f"__k{j}" for j in range(len(columns))]
        frame = (
            indexed.select(
                "__row",
                *(pl.col(c).cast(pl.Int64).alias(k) for c, k in zip(columns, keys, strict=True)),
                pl.col(EVENT_TIMESTAMP).dt.epoch("us").alias("__ts"),
            )
            .drop_nulls()
            .sort(*keys, "__ts")
        )
        if frame.is_empty():
            return None
        return cls(
            height=indexed.height,
            rows=frame["__row"].to_numpy(),
            keys=[frame[k].to_numpy() for k in keys],
            ts=frame["__ts"].to_numpy(),
            low=list(frame.select(pl.min(*keys)).row(0)),
            high=list(frame.select(pl.max(*keys)).row(0)),
        )

    @property
    def key_bits(self) -> list[int]:
        return [_bits(hi - lo + 1) for lo, hi in zip(self.low, self.high, strict=True)]


def _packed_view(view: ViewSpec, outputs: Sequence[str], spine: _Spine) -> pl.DataFrame | None:
    """The view's features for every entity row (null where none), or None when the view cannot
    be packed (key or time column types, or more than PACKED_BITS bits) and DuckDB must join."""
    table = storage.scan(view.path)
    schema = table.collect_schema()
    key_columns = [view.column(k) for k in view.join_keys]
    ts_column = view.column(view.timestamp_field)
    created = view.created_timestamp_column and view.column(view.created_timestamp_column)
    if not all(c in schema and _packable_key(schema[c]) for c in key_columns) or not all(
        isinstance(schema.get(c), pl.Datetime) for c in (ts_column, created) if c
    ):
        return None
    first, last = int(spine.ts.min()), int(spine.ts.max())
    ttl = view.ttl // timedelta(microseconds=1) if view.ttl else None
    keys = [pl.col(c).cast(pl.Int64).alias(f"__k{j}") for j, c in enumerate(key_columns)]
    window = pl.col("__t") <= last
    if ttl is not None:
        window &= pl.col("__t") >= first - ttl  # rows expired before every entity row
    for j, (lo, hi) in enumerate(zip(spine.low, spine.high, strict=True)):
        window &= pl.col(f"__k{j}").is_between(lo, hi)  # keys no entity row has
    # One read of the rows some entity row can see; DuckDB's way reads the table twice.
    rows = (
        table.select(
            *keys,
            pl.col(ts_column).dt.epoch("us").alias("__t"),
            *([pl.col(created).dt.epoch("us").alias("__c")] if created else []),
            *(pl.col(view.column(f)).alias(o) for f, o in zip(view.features, outputs, strict=True)),
        )
        .filter(window)
        .collect()
    )
    if rows.is_empty():
        return rows.select(outputs).clear(spine.height)
    slots = _TimeSlots.of(rows["__t"])
    key_bits = spine.key_bits
    row_bits = _bits(rows.height)
    if row_bits + slots.bits + sum(key_bits) > PACKED_BITS:
        return None
    key_shifts = [sum(key_bits[j + 1 :]) for j in range(len(key_bits))]
    key_at = row_bits + slots.bits  # where the keys start

    def pack(frame: pl.DataFrame) -> np.ndarray:
        """Each row as keys | time slot | position, sorted."""
        packed = np.arange(frame.height, dtype=np.int64)
        packed |= slots.slot(frame["__t"]) << row_bits
        for j, (lo, shift) in enumerate(zip(spine.low, key_shifts, strict=True)):
            packed |= (frame[f"__k{j}"].to_numpy() - lo) << (key_at + shift)
        packed.sort()
        return packed

    ordered = pack(rows)
    if created and rows.height > 1:
        # Rows equal in keys and event time: order them by created_timestamp (a null one first,
        # as it loses) so the last, which the search finds, is Feast's pick.
        groups = ordered >> row_bits
        if bool(np.any(groups[1:] == groups[:-1])):
            rows = rows.sort("__c", nulls_last=False, maintain_order=True)
            ordered = pack(rows)
    # Each entity row's query: its keys, the slot of the latest feature time <= its time, and the
    # largest position, so the search lands on the last feature row at or before it.
    latest = slots.latest(spine.ts)
    entity_key = np.zeros(len(spine.ts), dtype=np.int64)
    for key, lo, shift in zip(spine.keys, spine.low, key_shifts, strict=True):
        entity_key |= (key - lo) << shift
    query = (entity_key << key_at) | (np.maximum(latest, 0) << row_bits) | ((1 << row_bits) - 1)
    # The as-of join proper: for each query, the last packed feature row <= it.
    hits = (
        pl.DataFrame({"q": query})
        .join_asof(
            pl.DataFrame({"q": ordered, "hit": ordered}),
            on="q",
            strategy="backward",
            check_sortedness=False,  # both sides are sorted above
        )
        .get_column("hit")
    )
    found = (latest >= 0) & hits.is_not_null().to_numpy()
    hit = hits.fill_null(0).to_numpy()
    found &= (hit >> key_at) == entity_key
    if ttl is not None:
        found &= spine.ts - slots.time((hit >> row_bits) & ((1 << slots.bits) - 1)) <= ttl
    position = np.full(spine.height, -1, dtype=np.int64)
    position[spine.rows[found]] = hit[found] & ((1 << row_bits) - 1)
    at_rows = pl.Series(position)
    gather = pl.select(pl.when(at_rows >= 0).then(at_rows)).to_series()
    return rows.select(pl.col(outputs).gather(gather))


@dataclass(frozen=True)
class _TimeSlots:
    """A view's distinct event times as small integers that keep their order: (t - first) / step
    when the times lie on a grid (snapshots at fixed hours) that costs at most 8 bits more than
    ranks, else their rank."""

    times: np.ndarray  # distinct event times, epoch microseconds, sorted
    step: int | None  # the grid's step; None means ranks
    count: int  # slots in all: grid points from first to last time, or distinct times

    @classmethod
    def of(cls, event_times: pl.Series) -> _TimeSlots:
        times = np.sort(event_times.unique().to_numpy())
        step = int(np.gcd.reduce(times[1:] - times[0])) if len(times) > 1 else 1
        grid = (int(times[-1]) - int(times[0])) // step + 1
        if _bits(grid) <= _bits(len(times)) + 8:
            return cls(times, step, grid)
        return cls(times, None, len(times))

    @property
    def bits(self) -> int:
        return _bits(self.count)

    def slot(self, event_times: pl.Series) -> np.ndarray:
        """The slot of each time, which must be one of the view's."""
        if self.step is None:
            ranks = np.arange(len(self.times), dtype=np.int64)
            return event_times.replace_strict(self.times, ranks, return_dtype=pl.Int64).to_numpy()
        return (event_times.to_numpy() - self.times[0]) // self.step

    def latest(self, ts: np.ndarray) -> np.ndarray:
        """The slot of the latest event time <= each ts; -1 where all are later."""
        if self.step is None:
            return np.searchsorted(self.times, ts, side="right") - 1
        return np.minimum((ts - self.times[0]) // self.step, self.count - 1).clip(min=-1)

    def time(self, slots: np.ndarray) -> np.ndarray:
        if self.step is None:
            return self.times[slots]
        return self.times[0] + slots * self.step


@cache
def _database() -> duckdb.DuckDBPyConnection:
    """The process's DuckDB with the delta extension loaded (loading costs ~0.1 s a connection)."""
    con = connect()
    # Large joins spill to disk instead of failing, and not into the working directory.
    con.execute(f"SET temp_directory = {_literal(str(Path(tempfile.gettempdir()) / 'pit'))}")
    return con


def _view_sql(
    view: ViewSpec,
    outputs: Sequence[str],
    key_columns: Sequence[str],
    first: datetime | None,
    last: datetime | None,
) -> str:
    """A query of (__row, features) for the spine rows that have a feature row in the TTL."""
    ts = f"CAST({_quote(view.column(view.timestamp_field))} AS TIMESTAMPTZ)"
    # Feast breaks ties on event_timestamp by the latest created_timestamp, a null one losing.
    created = "'-infinity'::TIMESTAMPTZ"
    if view.created_timestamp_column:
        created = f"CAST({_quote(view.column(view.created_timestamp_column))} AS TIMESTAMPTZ)"
        created = f"coalesce({created}, '-infinity')"
    keys = [f"{_quote(view.column(k))} AS k{j}" for j, k in enumerate(view.join_keys)]
    # Only rows some entity row can see: none after the last row, none expired before the first.
    # DuckDB pushes these bounds into the Delta scan, which skips files by their statistics.
    low = f" AND {ts} >= {_literal(first - view.ttl)}" if first is not None and view.ttl else ""
    source = f"delta_scan({_literal(str(view.path))}) WHERE {ts} <= {_literal(last)}{low}"

    def rows(*values: str) -> str:
        columns = [*keys, f"{ts} AS t", f"{created} AS c", *values]
        return f"(SELECT {', '.join(columns)} FROM {source})"

    on = [f"s.__e{key_columns.index(c)} = r.k{j}" for j, c in enumerate(view.join_keys.values())]
    # The ASOF join finds each row's latest (event, created) time over keys and times alone; the
    # feature values of just those rows come from a second scan, which keeps the join small.
    latest = (
        f"SELECT s.__row, r.* FROM spine s ASOF JOIN {rows()} r ON {' AND '.join(on)}"
        f" AND {{'t': s.__ts, 'c': 'infinity'::TIMESTAMPTZ}} >= {{'t': r.t, 'c': r.c}}"
    )
    if view.ttl:
        # Feast keeps a row while its event_timestamp + ttl >= the entity row's timestamp.
        latest += f" WHERE r.t >= s.__ts - to_microseconds({view.ttl // timedelta(microseconds=1)})"
    same = [f"l.k{j} = d.k{j}" for j in range(len(keys))] + ["l.t = d.t", "l.c = d.c"]
    values = [f"{_quote(view.column(f))} AS f{j}" for j, f in enumerate(view.features)]
    # Rows equal in keys and both times are all the latest; Feast returns any one of them too.
    return (
        f"SELECT l.__row, {', '.join(f'd.f{j} AS {_quote(o)}' for j, o in enumerate(outputs))}"
        f" FROM ({latest}) l JOIN {rows(*values)} d ON {' AND '.join(same)}"
        " QUALIFY row_number() OVER (PARTITION BY l.__row) = 1"
    )


def _literal(value: str | datetime | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + value.replace("'", "''") + "'"


def service_views(store: FeatureStore, feature_service: str) -> list[ViewSpec]:
    """The views of a registered feature service, with the features it projects."""
    from feast.data_format import DeltaFormat
    from feast.errors import FeastObjectNotFoundException
    from feast.infra.offline_stores.file_source import FileSource

    from lakehouse.features import FeatureStoreError

    try:
        service = store.get_feature_service(feature_service)
    except (FeastObjectNotFoundException, FileNotFoundError) as exc:
        try:
            known = sorted(s.name for s in store.list_feature_services())
        except FileNotFoundError:
            known = []
        raise FeatureStoreError(
            f"no feature service {feature_service!r} in the registry; known: "
            + (", ".join(known) if known else "none, run lakehouse.features.apply() first")
        ) from exc
    views = []
    for projection in service.feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeastObjectNotFoundException as exc:
            raise NotImplementedError(
                f"{projection.name!r} in {feature_service!r} is not a plain feature view "
                "(on-demand views are not supported); use lakehouse.features.historical_features"
            ) from exc
        source = view.batch_source
        if not (isinstance(source, FileSource) and isinstance(source.file_format, DeltaFormat)):
            raise NotImplementedError(
                f"feature view {view.name!r} is not backed by a Delta FileSource; "
                "use lakehouse.features.historical_features"
            )
        views.append(
            ViewSpec(
                name=projection.name_alias or view.name,
                # As Feast's DuckDB store reads it: a relative path is relative to the cwd.
                path=Path(source.path),
                join_keys=projection.join_key_map or {c.name: c.name for c in view.entity_columns},
                features=[f.name for f in projection.features],
                timestamp_field=source.timestamp_field,
                created_timestamp_column=source.created_timestamp_column or None,
                ttl=view.ttl,
                field_mapping=dict(source.field_mapping),
            )
        )
    return views


def training_set(
    feature_service: str,
    entity_df: pl.DataFrame | pd.DataFrame,
    *,
    full_feature_names: bool = False,
) -> pl.DataFrame:
    """Training rows: entity_df plus a registered service's features as of each row's timestamp."""
    from lakehouse.features import feature_store

    views = service_views(feature_store(), feature_service)
    return point_in_time_join(entity_df, views, full_feature_names=full_feature_names)
