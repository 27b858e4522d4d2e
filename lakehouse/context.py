"""What a domain pipeline may touch, and the incremental, crash-safe way it writes.

Every output table records, in the same Delta commit that writes it, the newest `ingested_at`
of each input it has consumed (its watermarks). A run reads only input rows past those
watermarks, so a rerun with no new data writes nothing, and a run killed before a commit simply
redoes that step next time: the watermark only moves when the data does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from lakehouse import duck, lineage, storage
from lakehouse.registry import Domain, Registry

WATERMARKS = "mesh.watermarks"
QUARANTINE_COLUMNS = ("_rule", "_reason", "_source", "_quarantined_at", "_resolved_at")
CHECK_PREFIX = "_chk_"  # helper columns a pipeline adds for its rules; never written
TS = pl.Datetime("us", "UTC")
PROCESSED = "processed_at"  # when a row entered curated: what gold steps watermark on
SQL_BATCH_ROWS = 1_000_000  # rows per Arrow batch when a SQL result comes back to Polars


class UndeclaredDependencyError(PermissionError):
    """A domain tried to read data it has not declared as a dependency."""


@dataclass
class DomainContext:
    """Storage access for one domain's pipeline run, enforcing the mesh's read rule."""

    domain: Domain
    registry: Registry
    full_refresh: bool = False
    run_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    written: dict[str, int] = field(default_factory=dict)
    rows_in: int = 0
    rows_out: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # products of other domains read this run
    _step: lineage.LineageRun | None = field(default=None, repr=False)
    _step_inputs: set[str] = field(default_factory=set, repr=False)

    @property
    def name(self) -> str:
        return self.domain.name

    # ------------------------------------------------------------------ lineage
    @contextmanager
    def step(self, name: str) -> Iterator[lineage.LineageRun]:
        """One pipeline step as an OpenLineage run (START, then COMPLETE or FAIL): every table
        this context reads or writes inside it becomes an input or output of the run."""
        with lineage.track(f"{self.name}.{name}", self.name, owner=self.domain.owner) as run:
            outer, outer_inputs = self._step, self._step_inputs
            self._step, self._step_inputs = run, set()
            try:
                yield run
            finally:
                self._step, self._step_inputs = outer, outer_inputs

    def _read(self, domain: str, layer: str, table: str) -> pl.LazyFrame:
        path = storage.table_path(domain, layer, table)
        frame = storage.scan(path)
        key = f"{domain}/{layer}/{table}"
        if self._step is not None and key not in self._step_inputs:
            self._step_inputs.add(key)
            self._step.input(lineage.DatasetRef(domain, layer, table), frame, storage.version(path))
        return frame

    # ------------------------------------------------------------------ reading
    def path(self, layer: str, table: str) -> Path:
        """Location of one of this domain's own tables."""
        return storage.table_path(self.name, layer, table)

    def has(self, layer: str, table: str) -> bool:
        """Whether one of this domain's own tables exists yet (a source may not have delivered)."""
        return storage.exists(self.path(layer, table))

    def raw(self, table: str) -> pl.LazyFrame:
        """Lazy scan of one of this domain's raw (bronze) tables."""
        return self._read(self.name, "raw", table)

    def curated(self, table: str) -> pl.LazyFrame:
        """Lazy scan of one of this domain's curated (silver) tables."""
        return self._read(self.name, "curated", table)

    def gold(self, table: str) -> pl.LazyFrame:
        """Lazy scan of one of this domain's own gold products."""
        return self._read(self.name, "gold", table)

    def product(self, qualified: str) -> pl.LazyFrame:
        """Lazy scan of a gold data product: this domain's own, or a declared dependency."""
        owner, _, name = qualified.partition(".")
        self.registry.product(qualified)  # unknown products fail with a suggestion
        if owner != self.name and qualified not in self.domain.dependencies:
            raise UndeclaredDependencyError(
                f"domain {self.name!r} reads {qualified} without declaring it; add "
                f"'- {qualified}' under dependencies: in {self.domain.file}"
            )
        if owner != self.name and qualified not in self.reads:
            self.reads.append(qualified)
        return self._read(owner, "gold", name)

    def table(self, name: str) -> pl.LazyFrame:
        """Any table by name: this domain's own `layer.table`, or another domain's
        `domain.product` (gold, declared); another domain's raw or curated data is refused."""
        parts = name.split(".")
        if len(parts) == 2 and parts[0] in ("raw", "curated", "gold", "features"):
            return self._read(self.name, parts[0], parts[1])
        if len(parts) == 2:
            return self.product(name)
        if len(parts) == 3:
            domain, layer, table = parts
            if domain == self.name:
                return self._read(domain, layer, table)
            if layer == "gold":
                return self.product(f"{domain}.{table}")
            raise UndeclaredDependencyError(
                f"domain {self.name!r} cannot read {name}: another domain's {layer} data is "
                f"private; read its published product instead (declare e.g. '- {domain}.<product>'"
                f" under dependencies: in {self.domain.file})"
            )
        raise ValueError(f"{name!r} is not a table name; use layer.table or domain.product")

    def delta_sql_path(self, layer: str, table: str) -> str:
        """A quoted path for DuckDB's delta_scan over one of this domain's tables."""
        path = self.path(layer, table)
        if not storage.exists(path):
            raise storage.TableNotFoundError(path)
        self._read(self.name, layer, table)  # a lineage input of the current step
        return "'" + str(path).replace("'", "''") + "'"

    def sql(self, query: str, **frames: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """Run DuckDB SQL (delta_scan available, no downloads) over Delta tables and the given
        Polars frames (referenced by their keyword names) and return Polars."""
        with duck.connect() as con:
            for name, frame in frames.items():
                con.register(name, frame.collect() if isinstance(frame, pl.LazyFrame) else frame)
            # Batch by batch: .pl() holds DuckDB's whole Arrow result and Polars' copy of it at
            # once (at large, logistica's 27M tracking rows peaked 2.3 GiB higher that way).
            reader = con.sql(query).fetch_record_batch(SQL_BATCH_ROWS)
            parts = [pl.DataFrame(batch) for batch in reader]
            if parts:
                result = pl.concat(parts, rechunk=False)
            else:
                result = pl.DataFrame(reader.schema.empty_table())
        # DuckDB hands back TIMESTAMPTZ as Etc/UTC; the mesh's conformed type is us in UTC
        stamps = [n for n, t in result.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
        return result.with_columns(pl.col(stamps).dt.convert_time_zone("UTC").cast(TS))

    # ------------------------------------------------------------------ watermarks
    def watermarks(self, layer: str, table: str) -> dict[str, datetime]:
        """Newest ingested_at of each input already consumed into one of this domain's tables."""
        if self.full_refresh and f"{layer}/{table}" not in self.written:
            return {}
        raw = storage.latest_metadata(self.path(layer, table), WATERMARKS)
        if raw is None:
            return {}
        return {k: datetime.fromisoformat(v) for k, v in json.loads(raw).items()}

    def since(
        self, frame: pl.LazyFrame, mark: datetime | None, column: str = "ingested_at"
    ) -> pl.LazyFrame:
        """The rows of a frame that arrived after a watermark (all rows when there is none):
        raw rows by `ingested_at`, curated rows by `processed_at`."""
        if mark is None:
            return frame
        return frame.filter(pl.col(column) > pl.lit(mark, dtype=TS))

    def changes(
        self, table: str, product: str
    ) -> tuple[pl.LazyFrame, pl.LazyFrame, datetime | None]:
        """(all rows, rows not yet folded into `product`, new watermark) of a curated table."""
        rows = self.curated(table)
        mark = self.watermarks("gold", product).get(f"curated/{table}")
        newest = rows.select(pl.col(PROCESSED).max()).collect().item()
        return rows, self.since(rows, mark, PROCESSED), newest

    # ------------------------------------------------------------------ writing
    def _metadata(self, layer: str, table: str, marks: dict[str, datetime | None]) -> dict:
        merged = {k: v.isoformat() for k, v in self.watermarks(layer, table).items()}
        merged.update({k: v.isoformat() for k, v in marks.items() if v is not None})
        return {
            "domain": self.name,
            "run_at": self.run_at.isoformat(),
            WATERMARKS: json.dumps(merged),
        }

    def publish(
        self,
        layer: str,
        table: str,
        df: pl.DataFrame,
        *,
        keys: Sequence[str] | None = None,
        on_match: str = "update",
        watermarks: dict[str, datetime | None] | None = None,
        partition_by: Sequence[str] | None = None,
        column_lineage: dict[str, list[tuple[lineage.DatasetRef, str]]] | None = None,
    ) -> int | None:
        """Write a curated, gold or feature table as one atomic commit with its watermarks: a
        MERGE on keys (or an overwrite without keys, or on --full-refresh); None when empty."""
        if layer not in ("curated", "gold", "features", "quarantine"):
            raise ValueError(f"a pipeline cannot write to layer {layer!r}")
        df = df.drop([c for c in df.columns if c.startswith(CHECK_PREFIX)])
        path = self.path(layer, table)
        first_write = f"{layer}/{table}" not in self.written
        if df.is_empty() and not (self.full_refresh and first_write):
            return None
        meta = self._metadata(layer, table, watermarks or {})
        if keys and not (self.full_refresh and first_write):
            version = storage.merge(
                df, path, keys, on_match=on_match, partition_by=partition_by, metadata=meta
            )
        else:
            version = storage.write(
                df, path, mode="overwrite", partition_by=partition_by, metadata=meta
            )
        self.written[f"{layer}/{table}"] = version
        self.rows_out[f"{layer}/{table}"] = self.rows_out.get(f"{layer}/{table}", 0) + df.height
        if self._step is not None:
            ref = lineage.DatasetRef(self.name, layer, table)
            self._step.output(ref, df, version, column_lineage)
        return version

    def quarantine(
        self,
        table: str,
        bad: pl.DataFrame,
        key: Sequence[str],
        source: str,
        resolved: bool = False,
    ) -> None:
        """Keep rejected rows, with the rule and the reason, in quarantine/<table> (idempotent:
        a row already quarantined for the same rule is not added twice). `resolved` logs rows
        that were repaired on the way in."""
        if bad.is_empty():
            return
        bad = (
            bad.drop([c for c in bad.columns if c.startswith(CHECK_PREFIX)])
            .with_columns(
                _source=pl.lit(source),
                _quarantined_at=pl.lit(self.run_at, dtype=TS),
                _resolved_at=pl.lit(self.run_at if resolved else None, dtype=TS),
            )
            .unique(subset=[*key, "_rule"], keep="first", maintain_order=True)
        )
        path = self.path("quarantine", table)
        if storage.exists(path):  # only rows not quarantined before: reruns commit nothing
            seen = storage.scan(path).select(*key, "_rule").collect()
            bad = bad.join(seen, on=[*key, "_rule"], how="anti", nulls_equal=True)
            if bad.is_empty():
                return
        version = storage.merge(
            bad, path, [*key, "_rule"], on_match="ignore", metadata={"domain": self.name}
        )
        if self._step is not None:
            self._step.output(lineage.DatasetRef(self.name, "quarantine", table), bad, version)
        if not resolved:
            self.quarantined[table] = self.quarantined.get(table, 0) + bad.height

    def pending(self, table: str, rules: Sequence[str]) -> pl.DataFrame | None:
        """Quarantined rows of a table that failed only for a reason that time can fix (an
        unknown reference that may arrive late), not yet resolved, without quarantine columns."""
        path = self.path("quarantine", table)
        if not storage.exists(path) or not rules:
            return None
        rows = (
            storage.scan(path)
            .filter(pl.col("_resolved_at").is_null() & pl.col("_rule").is_in(list(rules)))
            .collect()
        )
        return rows.drop(QUARANTINE_COLUMNS) if rows.height else None

    def resolve(
        self, table: str, rows: pl.DataFrame, key: Sequence[str], rules: Sequence[str]
    ) -> None:
        """Mark quarantined rows as resolved now that they passed (late parents arrived)."""
        if rows.is_empty():
            return
        done = (
            rows.select(*key)
            .unique()
            .join(pl.DataFrame({"_rule": list(rules)}), how="cross")
            .with_columns(_resolved_at=pl.lit(self.run_at, dtype=TS))
        )
        path = self.path("quarantine", table)
        target = storage.scan(path).select(*key, "_rule").collect()
        done = done.join(target, on=[*key, "_rule"], how="semi")
        if done.height:
            from deltalake import DeltaTable

            predicate = " AND ".join(f"t.{k} = s.{k}" for k in [*key, "_rule"])
            (
                DeltaTable(str(path))
                .merge(done.to_arrow(), predicate=predicate, source_alias="s", target_alias="t")
                .when_matched_update(updates={"_resolved_at": "s._resolved_at"})
                .execute()
            )

    def curate(
        self,
        table: str,
        *,
        source: str,
        key: Sequence[str],
        rules: Sequence[object] = (),
        prepare: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
        on_match: str = "ignore",
        retry_rules: Sequence[str] = (),
        repairs: Sequence[object] = (),
    ) -> int:
        """One incremental raw -> curated step: new raw rows (plus quarantined rows waiting for a
        late reference) are prepared, split by the rules into good rows (deduplicated and merged
        into curated/<table>) and bad rows (quarantined); returns the number of rows written."""
        with self.step(f"curated.{table}"):
            return self._curate(
                table, source, key, rules, prepare, finish, on_match, retry_rules, repairs
            )

    def _curate(
        self,
        table: str,
        source: str,
        key: Sequence[str],
        rules: Sequence[object],
        prepare: Callable[[pl.LazyFrame], pl.LazyFrame] | None,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame] | None,
        on_match: str,
        retry_rules: Sequence[str],
        repairs: Sequence[object],
    ) -> int:
        mark = self.watermarks("curated", table).get(f"raw/{source}")
        retry = self.pending(source, retry_rules)
        written = 0
        # big backlogs (a first build) go through in slices of whole ingestion batches, each its
        # own commit with its own watermark: memory stays bounded and a crash resumes mid-way
        for low, high in self._slices(self.raw(source), mark):
            new = self.since(self.raw(source), low).filter(
                pl.col("ingested_at") <= pl.lit(high, dtype=TS)
            )
            written += self._curate_batch(
                table, source, key, new.collect(), retry, rules, prepare, finish, on_match,
                retry_rules, repairs, high,
            )  # fmt: skip
            retry = None
        if retry is not None:  # nothing new arrived, but a late reference may have
            written += self._curate_batch(
                table, source, key, retry.clear(), retry, rules, prepare, finish, on_match,
                retry_rules, repairs, None,
            )  # fmt: skip
        return written

    def _slices(
        self, raw: pl.LazyFrame, mark: datetime | None
    ) -> list[tuple[datetime | None, datetime]]:
        """(exclusive low, inclusive high) ingestion-time bounds of the rows after `mark`, about
        `curate_chunk_rows` rows each, never splitting one ingestion batch."""
        from lakehouse.config import get_settings

        limit = get_settings().curate_chunk_rows
        sizes = self.since(raw, mark).group_by("ingested_at").len().sort("ingested_at").collect()
        slices: list[tuple[datetime | None, datetime]] = []
        low, rows = mark, 0
        for stamp, n in sizes.iter_rows():
            rows += n
            if rows >= limit:
                slices.append((low, stamp))
                low, rows = stamp, 0
        if rows:
            slices.append((low, sizes["ingested_at"][-1]))
        return slices

    def _curate_batch(
        self,
        table: str,
        source: str,
        key: Sequence[str],
        new: pl.DataFrame,
        retry: pl.DataFrame | None,
        rules: Sequence[object],
        prepare: Callable[[pl.LazyFrame], pl.LazyFrame] | None,
        finish: Callable[[pl.LazyFrame], pl.LazyFrame] | None,
        on_match: str,
        retry_rules: Sequence[str],
        repairs: Sequence[object],
        new_mark: datetime | None,
    ) -> int:
        from lakehouse.quality import split

        self.rows_in += new.height
        batch = pl.concat([new, retry], how="diagonal_relaxed") if retry is not None else new
        del new
        if batch.is_empty():
            return 0
        frame = batch.lazy()
        if prepare is not None:
            frame = prepare(frame)
        # rules run before deduplication so that no bad row can hide behind a good copy
        good, bad = split(frame.collect(), list(rules))  # type: ignore[arg-type]
        del frame, batch
        if repairs:
            # rows a rule flags but `finish` repairs stay in curated; the log keeps the evidence
            _, repaired = split(good, list(repairs))  # type: ignore[arg-type]
            self.quarantine(source, repaired, key, f"raw/{source}", resolved=True)
        if finish is not None:
            good = finish(good.lazy()).collect()
        good = (
            good.sort("ingested_at", *key)
            .unique(subset=list(key), keep="first", maintain_order=True)
            .with_columns(pl.lit(self.run_at, dtype=TS).alias(PROCESSED))
        )
        self.quarantine(source, bad, key, f"raw/{source}")
        self.publish("curated", table, good, keys=key, on_match=on_match,
                     watermarks={f"raw/{source}": new_mark})  # fmt: skip
        if retry is not None:
            passed = good.join(retry.select(*key), on=list(key), how="semi")
            self.resolve(source, passed, key, retry_rules)
        return good.height

    def publish_product(
        self,
        product: str,
        df: pl.DataFrame,
        *,
        watermarks: dict[str, datetime | None] | None = None,
        column_lineage: dict[str, list[tuple[str, str]]] | None = None,
    ) -> int | None:
        """Validate a gold batch against the product's contract, quarantine failing rows, and
        merge the rest on the contract's primary key; a batch failing more than the contract's
        threshold is not published at all (the product keeps its last good version)."""
        from lakehouse.contracts import contract_for
        from lakehouse.quality import validate

        self.domain.product(product)
        if df.is_empty() and not self.full_refresh:
            return None
        contract = contract_for(f"{self.name}.{product}")
        df = df.drop([c for c in df.columns if c.startswith(CHECK_PREFIX)])
        result = validate(df, contract)
        if result.quarantined.height:
            self.quarantine(product, result.quarantined, contract.primary_key, f"gold/{product}")
        if not result.passed:
            version = storage.version(self.path("gold", product))
            self.blocked.append(
                f"{self.name}.{product}: {result.failure_share:.1%} of the batch failed its "
                f"contract (threshold {result.threshold:.1%}; {result.rules_failed()}); not "
                f"published, the product stays at version {version}"
            )
            return None
        lineage_map = {
            out: [(lineage.DatasetRef(*src.split("/")), col) for src, col in sources]
            for out, sources in (column_lineage or {}).items()
        }
        return self.publish(
            "gold",
            product,
            result.valid,
            keys=contract.primary_key,
            watermarks=watermarks,
            column_lineage=lineage_map or None,
        )
