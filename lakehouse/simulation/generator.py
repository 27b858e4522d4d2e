"""Run the simulation and land each domain's source data as append-only bronze Delta tables."""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from lakehouse import storage
from lakehouse.config import get_settings
from lakehouse.simulation.dirty import injection_log
from lakehouse.simulation.scales import (
    DEFAULT_DIRTY_SHARE,
    DEFAULT_END_DATE,
    DEFAULT_SEED,
    get_scale,
)
from lakehouse.simulation.sources import SPECS
from lakehouse.simulation.world import World

INGEST_HOUR = 2  # each day's source drop lands in the lakehouse at 02:00 UTC the next day
SIM_DAY_KEY = "sim_day_end"


class WorldExistsError(RuntimeError):
    """A world is already stored and the caller did not ask to append or replace it."""


class NoWorldError(RuntimeError):
    """Appending days was asked for but no world exists yet."""


@dataclass
class GenerationResult:
    """What a generate call did."""

    scale: str
    seed: int
    start: date
    end: date
    days: int
    rows: dict[str, int] = field(default_factory=dict)
    injected: int = 0
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def world_dir() -> Path:
    """Where the simulation keeps its hidden state between runs."""
    return get_settings().simulation_dir / "world"


def injections_path() -> Path:
    """Delta table logging every dirty record that reached a raw table."""
    return get_settings().simulation_dir / "injections"


def world_info() -> dict[str, object] | None:
    """Scale, seed and calendar of the stored world, or None."""
    folder = world_dir()
    previous = folder.with_name(folder.name + ".old")
    if not folder.exists() and previous.exists():
        previous.rename(folder)  # a save was interrupted between its two renames
    meta = folder / "world.json"
    if not meta.exists():
        return None
    info = json.loads(meta.read_text())
    start = date.fromisoformat(info["start"])
    info["end"] = (start + timedelta(days=info["day"] - 1)).isoformat()
    return info


def _restore_unsaved_commits(world: World) -> list[Path]:
    """Roll back commits newer than the saved world (a run killed between its writes), so the
    rerun neither duplicates nor loses rows; returns the tables it restored."""
    from deltalake import DeltaTable

    paths = [storage.table_path(s.domain, "raw", s.name) for s in SPECS.values()]
    restored = []
    for path in [*paths, injections_path()]:
        if not storage.exists(path):
            continue
        for entry in storage.history(path):
            day = entry.get(SIM_DAY_KEY)
            if day is not None and int(day) >= world.day:
                continue
            if entry["version"] != storage.version(path):
                DeltaTable(str(path)).restore(entry["version"])
                restored.append(path)
            break
        else:  # the table was created by the unsaved run itself
            shutil.rmtree(path)
            restored.append(path)
    return restored


def _flush(world: World, buffers: dict[str, list[pl.DataFrame]], last_day: int) -> dict[str, int]:
    """Write buffered rows of every table as one Delta commit each, then save the world."""
    written: dict[str, int] = {}
    logs: list[pl.DataFrame] = []
    day0 = pl.lit(world.start).cast(pl.Datetime("us", "UTC"))
    for table, frames in buffers.items():
        if not frames:
            continue
        spec = SPECS[table]
        frame = pl.concat(frames, how="vertical_relaxed")
        release_date = pl.lit(world.start) + pl.duration(days=pl.col("_release_day"))
        frame = frame.with_columns(
            ingested_at=day0 + pl.duration(days=pl.col("_release_day") + 1, hours=INGEST_HOUR),
            batch_id=pl.lit(f"{spec.domain}.{table}-") + release_date.dt.strftime("%Y%m%d"),
        )
        for batch in frame.filter(pl.col("_dirty").is_not_null()).partition_by("batch_id"):
            logs.append(injection_log(batch, spec, batch["batch_id"][0]))
        frame = frame.drop("_release_day", "_dirty")
        storage.write(
            frame,
            storage.table_path(spec.domain, "raw", table),
            metadata={SIM_DAY_KEY: last_day, "source": "simulation"},
        )
        written[f"{spec.domain}.{table}"] = frame.height
    if logs:
        storage.write(pl.concat(logs), injections_path(), metadata={SIM_DAY_KEY: last_day})
    world.save(world_dir())
    buffers.clear()
    return written


def generate(
    scale: str | None = None,
    seed: int | None = None,
    end_date: date | None = None,
    days: int | None = None,
    dirty_share: float = DEFAULT_DIRTY_SHARE,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Create a new world (or, with `days`, append that many days to the stored one)."""
    if dirty_share < 0 or dirty_share > 0.5:
        raise ValueError(f"dirty share {dirty_share} is out of range; use a value in [0, 0.5]")
    info = world_info()
    if days is None:
        sc = get_scale(scale or "small")
        if info is not None and not force:
            raise WorldExistsError(
                f"a world already exists in {world_dir().parent} (scale {info['scale']}, seed "
                f"{info['seed']}, through {info['end']}); append days with `mesh generate --days "
                "N`, or regenerate it with --force (deletes every table built from it)"
            )
        if force:
            for folder in (get_settings().lakehouse_dir, get_settings().simulation_dir):
                shutil.rmtree(folder, ignore_errors=True)
        end = end_date or DEFAULT_END_DATE
        world = World(
            sc,
            DEFAULT_SEED if seed is None else seed,
            end - timedelta(days=sc.days - 1),
            dirty_share,
        )
        world.populate()
        n_days = sc.days
    else:
        if days < 1:
            raise ValueError(f"--days must be at least 1 (got {days})")
        if info is None:
            raise NoWorldError(
                f"no world to append to in {world_dir().parent}; create one first with "
                "`mesh generate --scale small`"
            )
        for name, given, stored in (("scale", scale, info["scale"]), ("seed", seed, info["seed"])):
            if given is not None and given != stored:
                raise ValueError(
                    f"--{name} {given} differs from the stored world's {name} {stored}; drop "
                    f"--{name} to append, or regenerate with --force"
                )
        if end_date is not None:
            raise ValueError("--end-date only applies to a new world; --days appends after its end")
        sc = get_scale(str(info["scale"]))
        world = World.load(world_dir(), sc)
        _restore_unsaved_commits(world)
        n_days = days
    t0 = time.perf_counter()
    first_day = world.day
    result = GenerationResult(sc.name, world.seed, world.start, world.start, 0)
    buffers: dict[str, list[pl.DataFrame]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for i in range(n_days):
        for table, frame in world.step().items():
            buffers[table].append(frame)
        if (i + 1) % sc.flush_days == 0 or i + 1 == n_days:
            for key, n in _flush(world, buffers, world.day - 1).items():
                totals[key] += n
        if progress:
            progress(i + 1, n_days)
    result.rows = dict(totals)
    result.days = world.day - first_day
    result.end = world.start + timedelta(days=world.day - 1)
    result.seconds = time.perf_counter() - t0
    if storage.exists(injections_path()):
        result.injected = storage.row_count(injections_path())
    return result
