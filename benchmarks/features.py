"""Benchmark the feature store at one scale: training sets, online reads, materialization.

Builds a mesh in its own data directory (or reuses the one already built there), then measures
  a) a point-in-time training set of N entity rows (real customer ids, as-of times spread over
     the simulated history) on `churn_v2`: our engine (lakehouse/pit.py) against Feast's
     get_historical_features on its DuckDB offline store, each in its own child process (peak
     RSS per engine), outputs compared cell by cell;
  b) online read latency p50/p99, in-process, for 1 and 100 customers per call: the serving
     path (lakehouse.features.OnlineReader, as POST /churn/v1/predict reads) and Feast's
     get_online_features;
  c) materialization throughput (feature values per second), full and incremental (after
     `mesh generate --days 1`, `mesh run`, `mesh features build`).
Figures are printed and written to docs/benchmarks.md as a "### features — <date>" section.
Step (c) adds one simulated day to the world in the data directory each time it runs.

    python benchmarks/features.py [--scale medium] [--entity-rows 1000000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generate import DOC, machine  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[1]
MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]
SERVICE = "churn_v2"
# The feature tables a built mesh holds (domain, table).
FEATURE_TABLES = (
    ("producto", "product_features"),
    ("ventas", "customer_features"),
    ("ventas", "customer_price_change"),
    ("logistica", "customer_features"),
    ("logistica", "product_features"),
    ("marketing", "customer_features"),
    ("finanzas", "customer_features"),
)
BUILD_STEPS = (
    ("generate", ["generate", "--scale", "{scale}"]),
    ("run", ["run"]),
    ("features build", ["features", "build"]),
    ("features apply", ["features", "apply"]),
)
OLD_SECTION = "### point-in-time training sets"


def default_data_dir(scale: str) -> Path:
    """Where the benchmark mesh of a scale lives unless --data-dir says otherwise (shared with
    benchmarks/training.py)."""
    return Path(tempfile.gettempdir()) / "mesh-bench" / scale


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# --------------------------------------------------------------------------- child processes


@dataclass
class Child:
    """A finished child process: exit code, wall seconds, peak RSS and why it was stopped."""

    code: int
    wall: float
    peak_gib: float
    killed: str = ""
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.killed

    def failure(self) -> str:
        why = self.killed or f"exit code {self.code}"
        tail = ""
        if self.log and self.log.exists():
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        return f"{why}; last lines of {self.log}:\n{tail}"


def _rss_gib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return 0.0


def run_child(
    cmd: list[str],
    env: dict[str, str],
    logfile: Path,
    label: str,
    *,
    quiet: bool = True,
    max_gib: float | None = None,
    timeout: float | None = None,
) -> Child:
    """Run a child process; peak RSS is its own (wait4). Its stderr (and stdout when quiet) goes
    to `logfile`; every minute a line says it is still running. It is killed past `max_gib` of
    resident memory or `timeout` seconds."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    beat = t0
    killed = ""
    with logfile.open("w") as sink:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=sink if quiet else None, stderr=sink
        )  # fmt: skip
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            rss = _rss_gib(proc.pid)
            if not killed and max_gib and rss > max_gib:
                killed = f"killed at {rss:.1f} GiB resident, over the {max_gib:g} GiB limit"
                proc.kill()
            if not killed and timeout and now - t0 > timeout:
                killed = f"killed after {now - t0:.0f} s, over the {timeout:g} s limit"
                proc.kill()
            if now - beat >= 60:
                log(f"  ... {label}: {now - t0:.0f} s, {rss:.2f} GiB resident")
                beat = now
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Child(
        proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 2**20, killed, logfile
    )


def mesh_step(name: str, args: list[str], env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Run one `mesh` command as a child; exits with its log tail if it fails."""
    log(f"mesh {' '.join(args)} ...")
    child = run_child([*MESH, *args], env, logs / f"{name.replace(' ', '-')}.log", f"mesh {name}")
    if not child.ok:
        raise SystemExit(f"`mesh {' '.join(args)}` failed: {child.failure()}")
    log(f"  done in {child.wall:.1f} s, peak RSS {child.peak_gib:.2f} GiB")
    return {
        "step": name,
        "seconds": round(child.wall, 1),
        "peak_gib": round(child.peak_gib, 2),
        "at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }


# --------------------------------------------------------------------------- the mesh


def feature_tables_missing(data: Path) -> list[str]:
    return [
        f"{d}/features/{t}"
        for d, t in FEATURE_TABLES
        if not (data / "lakehouse" / d / "features" / t / "_delta_log").is_dir()
    ]


def world(data: Path) -> dict[str, Any] | None:
    meta = data / "simulation" / "world" / "world.json"
    return json.loads(meta.read_text()) if meta.exists() else None


def ensure_mesh(data: Path, scale: str, env: dict[str, str]) -> tuple[list[dict], bool]:
    """Build the mesh in `data` up to `mesh features apply`, or reuse it; returns the journal of
    the build steps (this run's or the earlier one's) and whether anything was built now."""
    bench = data / "bench"
    journal_file = bench / "build.json"
    journal: list[dict] = json.loads(journal_file.read_text()) if journal_file.exists() else []
    info = world(data)
    if info is not None and info.get("scale") != scale:
        raise SystemExit(
            f"{data} holds a {info.get('scale')} world, not {scale}; pass another --data-dir "
            f"or delete {data}"
        )
    registry = data / "feast" / "registry.db"
    if info is not None and registry.exists() and not feature_tables_missing(data):
        log(f"reusing the {scale} mesh in {data}")
        return journal, False
    done = {entry["step"] for entry in journal}
    built = False
    for name, args in BUILD_STEPS:
        if name == "generate" and info is not None:
            continue
        if name in done and name != "generate":
            continue
        journal.append(mesh_step(name, [a.format(scale=scale) for a in args], env, bench / "logs"))
        built = True
        bench.mkdir(parents=True, exist_ok=True)
        journal_file.write_text(json.dumps(journal, indent=1))
    missing = feature_tables_missing(data)
    if missing or not registry.exists():
        raise SystemExit(f"the mesh in {data} is incomplete after building: missing {missing}")
    return journal, built


def entity_frame(data: Path, rows: int, seed: int, out: Path) -> dict[str, Any]:
    """N entity rows: customer ids drawn from ventas' customers, as-of times uniform over the
    feature history (first snapshot .. now); a row_id makes the rows comparable."""
    import numpy as np
    import polars as pl

    from lakehouse import storage

    lake = data / "lakehouse"
    ids = (
        storage.scan(lake / "ventas" / "curated" / "customers")
        .select(pl.col("customer_id").unique().sort())
        .collect()["customer_id"]
        .to_numpy()
    )
    first, last = (
        storage.scan(lake / "ventas" / "features" / "customer_features")
        .select(first=pl.min("event_timestamp"), last=pl.max("event_timestamp"))
        .collect()
        .row(0)
    )
    rng = np.random.default_rng(seed)
    lo, hi = int(first.timestamp() * 1e6), int(last.timestamp() * 1e6)
    frame = pl.DataFrame(
        {
            "row_id": np.arange(rows, dtype=np.int64),
            "customer_id": rng.choice(ids, size=rows),
            "event_timestamp": pl.Series(rng.integers(lo, hi, size=rows, endpoint=True))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
        }
    )
    frame.write_parquet(out)
    return {"customers": len(ids), "first": first, "last": last}


# --------------------------------------------------------------------------- a) training set

PIT_CHILD = """
import json, resource, sys, time
t_start = time.perf_counter()
engine, entities_path, out_path, result_path, service = sys.argv[1:6]
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
if engine == "ours":
    import polars as pl
    from lakehouse.features import feature_store
    from lakehouse.pit import point_in_time_join, service_views
    entities = pl.read_parquet(entities_path)
    views = service_views(feature_store(), service)
    setup, before = time.perf_counter() - t_start, peak()
    t0 = time.perf_counter()
    frame = point_in_time_join(entities, views)
    seconds, rows, at_end = time.perf_counter() - t0, frame.height, peak()
    frame.write_parquet(out_path)
else:
    import pandas as pd
    from lakehouse.features import feature_store
    entities = pd.read_parquet(entities_path)
    store = feature_store()
    fs = store.get_feature_service(service)
    setup, before = time.perf_counter() - t_start, peak()
    t0 = time.perf_counter()
    frame = store.get_historical_features(entity_df=entities, features=fs).to_df()
    seconds, rows, at_end = time.perf_counter() - t0, len(frame), peak()
    frame.to_parquet(out_path, index=False)
with open(result_path, "w") as f:
    json.dump({"seconds": seconds, "setup": setup, "rows": rows, "peak_before_gib": before,
               "peak_after_join_gib": at_end}, f)
"""


def training_set_run(
    engine: str, entities: Path, work: Path, env: dict[str, str], **limits: Any
) -> dict[str, Any]:
    """One engine on one entity file in a child process; the figures, or why it failed."""
    out, result = work / f"{engine}-{entities.stem}.parquet", work / f"{engine}-result.json"
    result.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    log(f"{engine}: training set on {entities.stem} (load {load:.1f}) ...")
    child = run_child(
        [sys.executable, "-c", PIT_CHILD, engine, str(entities), str(out), str(result), SERVICE],
        env, work / "logs" / f"pit-{engine}-{entities.stem}.log", engine, **limits,
    )  # fmt: skip
    figures: dict[str, Any] = {
        "wall": child.wall,
        "peak_gib": child.peak_gib,
        "out": out,
        "load": load,
    }
    if not child.ok:
        figures["error"] = child.killed or f"exit code {child.code}"
        log(f"  {engine} FAILED: {child.failure()}")
        return figures
    figures.update(json.loads(result.read_text()))
    log(
        f"  {engine}: {figures['rows']:,} rows, join {figures['seconds']:.1f} s "
        f"(process {child.wall:.1f} s), peak RSS {child.peak_gib:.2f} GiB"
    )
    return figures


def compare(ours_path: Path, feast_path: Path) -> dict[str, Any]:
    """Cell-by-cell comparison after sorting by row_id and normalising dtypes: numbers as
    Float64 (Feast gives float64 for an Int64 feature with nulls), NaN as null, timestamps as
    UTC microseconds. A cell mismatches when exactly one side is null or the values differ."""
    import polars as pl

    def normal(frame: pl.DataFrame) -> pl.DataFrame:
        exprs = []
        for name, dtype in frame.schema.items():
            col = pl.col(name)
            if isinstance(dtype, pl.Datetime):
                col = (
                    col.dt.replace_time_zone("UTC")
                    if dtype.time_zone is None
                    else col.dt.convert_time_zone("UTC")
                ).dt.cast_time_unit("us")
            elif dtype.is_numeric() or dtype == pl.Boolean:
                col = col.cast(pl.Float64).fill_nan(None)
            elif dtype in (pl.String, pl.Categorical, pl.Object):
                col = col.cast(pl.String)
            exprs.append(col)
        return frame.select(exprs).sort("row_id")

    ours, feast = normal(pl.read_parquet(ours_path)), normal(pl.read_parquet(feast_path))
    report: dict[str, Any] = {
        "rows": (ours.height, feast.height),
        "only_ours": sorted(set(ours.columns) - set(feast.columns)),
        "only_feast": sorted(set(feast.columns) - set(ours.columns)),
        "columns": {},
        "examples": [],
    }
    if ours["row_id"].to_list() != feast["row_id"].to_list():
        report["row_ids_differ"] = True
        joined = ours.join(feast, on="row_id", how="inner", suffix="__feast")
    else:
        joined = pl.concat(
            [ours, feast.drop("row_id").rename(lambda c: f"{c}__feast")], how="horizontal"
        )
    shared = [c for c in ours.columns if c in feast.columns and c != "row_id"]
    for name in shared:
        a, b = pl.col(name), pl.col(f"{name}__feast")
        differs = a.is_null() != b.is_null()
        if joined.schema[name] == pl.Float64:
            close = (a - b).abs() <= 1e-9 * pl.max_horizontal(a.abs(), b.abs(), pl.lit(1.0))
            differs = differs | (a.is_not_null() & b.is_not_null() & ~close)
        else:
            differs = differs | (a.is_not_null() & b.is_not_null() & (a != b))
        bad = joined.filter(differs)
        report["columns"][name] = bad.height
        for row in bad.head(3).select("row_id", name, f"{name}__feast").iter_rows():
            report["examples"].append(
                {"row_id": row[0], "column": name, "ours": row[1], "feast": row[2]}
            )
    report["cells"] = joined.height * len(shared)
    report["mismatches"] = sum(report["columns"].values())
    report["null_cells"] = int(sum(joined[c].null_count() for c in shared))
    return report


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one engine as one: the median run by join time, with every run's join
    time and load, and the highest peak RSS of them all."""
    middle = dict(sorted(runs, key=lambda f: f["seconds"])[(len(runs) - 1) // 2])
    middle["all_seconds"] = [f["seconds"] for f in runs]
    middle["loads"] = [f["load"] for f in runs]
    middle["peak_gib"] = max(f["peak_gib"] for f in runs)
    middle["peak_after_join_gib"] = max(f["peak_after_join_gib"] for f in runs)
    return middle


def training_sets(
    entities: Path, rows: int, work: Path, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Ours and Feast at `rows`, alternating, `--repeat` times each; if Feast fails there, both
    again (once) at halving sizes until Feast completes."""
    import polars as pl

    limits = {"max_gib": args.max_gib, "timeout": args.feast_timeout}
    result: dict[str, Any] = {"requested": rows, "attempts": []}
    ours_runs: list[dict[str, Any]] = []
    feast_runs: list[dict[str, Any]] = []
    feast_failed = False
    for i in range(args.repeat):
        log(f"training sets, round {i + 1} of {args.repeat}")
        ours = training_set_run("ours", entities, work, env)
        if "error" in ours:
            raise SystemExit(f"our engine failed at {rows:,} rows: {ours['error']}")
        ours_runs.append(ours)
        if feast_failed:
            continue
        feast = training_set_run("feast", entities, work, env, **limits)
        if "error" in feast:
            result["attempts"].append((rows, feast))
            feast_failed = True
        else:
            feast_runs.append(feast)
    result["ours_full"] = summarise(ours_runs)
    if not feast_failed:
        result["feast"], result["feast_rows"] = summarise(feast_runs), rows
        result["attempts"].append((rows, result["feast"]))
        result["ours"] = result["ours_full"]
    else:
        size = rows
        while True:
            size //= 2
            if size < 10_000:
                result["feast"] = None
                return result
            log(f"Feast failed at {size * 2:,} rows; trying {size:,}")
            path = work / f"entities-{size}.parquet"
            pl.read_parquet(entities).head(size).write_parquet(path)
            feast = training_set_run("feast", path, work, env, **limits)
            result["attempts"].append((size, feast))
            if "error" not in feast:
                break
        result["feast"], result["feast_rows"] = summarise([feast]), size
        result["ours"] = summarise([training_set_run("ours", path, work, env)])
    log("comparing the two training sets ...")
    result["compare"] = compare(result["ours"]["out"], result["feast"]["out"])
    c = result["compare"]
    log(f"  {c['mismatches']:,} mismatching cells of {c['cells']:,}")
    return result


# --------------------------------------------------------------------------- b) online reads

ONLINE_CHILD = """
import json, sys, time
import numpy as np
ids_path, calls, budget, result_path, service = sys.argv[1:6]
ids, calls, budget = json.load(open(ids_path)), int(calls), float(budget)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type
from lakehouse.config import get_settings
from lakehouse.features import online_features_with_time, online_reader, serving_store

reader = online_reader(service, str(get_settings().data_dir.resolve()))
store = serving_store()
fs = store.get_feature_service(service)

def serving(cids):  # POST /churn/v1/predict's read: one customer per call
    return [online_features_with_time(service, c)[0] for c in cids]

def batched(cids):  # the same provider.online_read as the serving path, all keys in one call
    keys = [EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=c)]) for c in cids]
    out = {"customer_id": list(cids)}
    for view, names in reader._views:
        rows = reader._provider.online_read(reader._store.config, view, keys, names)
        for name in names:
            out[name] = [None if (found or {}).get(name) is None
                         else feast_value_type_to_python_type(found[name]) for _, found in rows]
    return out

def feast(cids):
    return store.get_online_features(
        features=fs, entity_rows=[{"customer_id": c} for c in cids]).to_dict()

# the three paths must return the same values
sample = ids[:100]
a, b, c = serving(sample), batched(sample), feast(sample)
names = [n for n in b if n != "customer_id"]
disagree = 0
for i, cid in enumerate(sample):
    for n in names:
        values = {repr(a[i][n]), repr(b[n][i]), repr(c[n][i])}
        disagree += len(values) > 1
known = sum(any(b[n][i] is not None for n in names) for i in range(len(sample)))

rng = np.random.default_rng(1)
def measure(fn, batch):
    pick = lambda: [ids[i] for i in rng.integers(0, len(ids), batch)]
    for _ in range(10):
        fn(pick())
    lat, end = [], time.perf_counter() + budget
    while len(lat) < calls and (time.perf_counter() < end or len(lat) < 50):
        chosen = pick()
        t0 = time.perf_counter()
        fn(chosen)
        lat.append((time.perf_counter() - t0) * 1000)
    print(f"  {fn.__name__} x{batch}: {len(lat)} calls, p50 {np.percentile(lat, 50):.2f} ms",
          flush=True)
    return {"calls": len(lat), "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "mean": float(np.mean(lat))}

cases = [("serving", 1, serving), ("serving", 100, serving), ("batched", 100, batched),
         ("feast", 1, feast), ("feast", 100, feast)]
out = {"disagreeing_values": disagree, "checked_values": len(sample) * len(names),
       "known_online": known, "sample": len(sample), "features": len(names), "cases": []}
for name, batch, fn in cases:
    out["cases"].append({"path": name, "batch": batch, **measure(fn, batch)})
with open(result_path, "w") as f:
    json.dump(out, f)
"""


def online_reads(
    data: Path, work: Path, env: dict[str, str], calls: int, budget: float
) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    from lakehouse import storage

    ids = (
        storage.scan(data / "lakehouse" / "ventas" / "features" / "customer_features")
        .select(pl.col("customer_id").unique().sort())
        .collect()["customer_id"]
        .to_numpy()
    )
    chosen = np.random.default_rng(2).permutation(ids)[:20_000]
    ids_file, result = work / "online-ids.json", work / "online-result.json"
    ids_file.write_text(json.dumps([int(i) for i in chosen]))
    log(f"online reads on {SERVICE} ({len(chosen):,} customers to draw from) ...")
    child = run_child(
        [sys.executable, "-c", ONLINE_CHILD, str(ids_file), str(calls), str(budget), str(result),
         SERVICE],
        env, work / "logs" / "online.log", "online reads", quiet=False,
    )  # fmt: skip
    if not child.ok:
        raise SystemExit(f"online read benchmark failed: {child.failure()}")
    return json.loads(result.read_text())


# --------------------------------------------------------------------------- c) materialization

MATERIALIZE_CHILD = """
import json, sqlite3, sys, time
from datetime import UTC
from pathlib import Path
import polars as pl
incremental, result_path = sys.argv[1] == "incremental", sys.argv[2]
from lakehouse import features, storage
from lakehouse.config import get_settings
store = features.feature_store()
t0 = time.perf_counter()
done = features.materialize(incremental=incremental)
seconds = time.perf_counter() - t0
db = sqlite3.connect(get_settings().feast_dir / "online_store.db")
tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
views = []
for fv in features.feature_store().list_feature_views():
    if fv.name not in done:
        continue
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in done[fv.name])
    keys = [c.name for c in fv.entity_columns]
    ts = pl.col(fv.batch_source.timestamp_field)
    rows = (storage.scan(Path(fv.batch_source.path)).filter((ts >= start) & (ts <= end))
            .select(keys).unique().collect().height)
    table = f"{store.project}_{fv.name}"
    online = None
    if table in tables:
        online = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    newest = storage.scan(Path(fv.batch_source.path)).select(ts.max()).collect().item()
    views.append({"view": fv.name, "start": start.isoformat(), "end": end.isoformat(),
                  "rows": rows, "features": len(fv.features), "online_cells": online,
                  "newest": newest.isoformat() if newest else None})
with open(result_path, "w") as f:
    json.dump({"seconds": seconds, "views": views}, f)
"""


def materialize(kind: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    result = work / f"materialize-{kind}.json"
    result.unlink(missing_ok=True)
    log(f"{kind} materialization ...")
    child = run_child(
        [sys.executable, "-c", MATERIALIZE_CHILD, kind, str(result)],
        env, work / "logs" / f"materialize-{kind}.log", f"materialize {kind}",
    )  # fmt: skip
    if not child.ok:
        raise SystemExit(f"{kind} materialization failed: {child.failure()}")
    out = json.loads(result.read_text())
    out.update(wall=child.wall, peak_gib=child.peak_gib)
    values = sum(v["rows"] * v["features"] for v in out["views"])
    log(f"  {values:,} feature values in {out['seconds']:.1f} s, peak {child.peak_gib:.2f} GiB")
    return out


# --------------------------------------------------------------------------- report


def gib(x: float) -> str:
    return f"{x:.2f} GiB"


def report_lines(r: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        f"Mesh: scale {args.scale}, world {r['world']}; "
        + ("built by this run." if r["built"] else "reused (built earlier by this script)."),
        f"Entity frame: {args.entity_rows:,} rows, customer ids drawn at random from "
        f"{r['entities']['customers']:,} customers, as-of times uniform over "
        f"{r['entities']['first']:%Y-%m-%d}..{r['entities']['last']:%Y-%m-%d %H:%M}.",
        "",
    ]
    if r["journal"]:
        lines += ["Build steps (each a child process):", "",
                  "| step | seconds | peak RSS | when |", "|---|---|---|---|"]  # fmt: skip
        for e in r["journal"]:
            lines.append(
                f"| `mesh {e['step']}` | {e['seconds']:.1f} | {gib(e['peak_gib'])} | {e['at']} |"
            )
        lines.append("")
    ts = r["training"]
    lines += [
        f"**a) training set on `{SERVICE}`** (join time measured in the child, after imports "
        "and registry look-up; each engine in its own process, the two alternating, "
        f"{args.repeat} run(s) each; peak RSS: the highest of the runs; load: 1-minute load "
        "average when each run started):",
        "",
        "| engine | entity rows | rows out | join s (median; each run) | process wall s "
        "| peak RSS after join | peak RSS process | load at start |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, size: int, f: dict[str, Any]) -> str:
        if "error" in f:
            return (
                f"| {name} | {size:,} | failed: {f['error']} | | {f['wall']:.1f} | | "
                f"{gib(f['peak_gib'])} | {f['load']:.1f} |"
            )
        each = " / ".join(f"{x:.2f}" for x in f["all_seconds"])
        loads = " / ".join(f"{x:.1f}" for x in f["loads"])
        return (
            f"| {name} | {size:,} | {f['rows']:,} | {f['seconds']:.2f} ({each}) | "
            f"{f['wall']:.1f} | {gib(f['peak_after_join_gib'])} | {gib(f['peak_gib'])} | "
            f"{loads} |"
        )

    lines.append(row("ours (`lakehouse/pit.py`)", ts["requested"], ts["ours_full"]))
    for size, f in ts["attempts"]:
        lines.append(row("Feast 0.67 `get_historical_features` (DuckDB)", size, f))
    if ts.get("feast") and ts["feast_rows"] != ts["requested"]:
        lines.append(row("ours (`lakehouse/pit.py`)", ts["feast_rows"], ts["ours"]))
    lines.append("")
    if ts.get("feast"):
        c, f, o = ts["compare"], ts["feast"], ts["ours"]
        lines.append(
            f"At {ts['feast_rows']:,} rows ours is {f['seconds'] / o['seconds']:.1f}x faster "
            f"than Feast ({o['seconds']:.2f} s vs {f['seconds']:.2f} s) and peaks at "
            f"{gib(o['peak_gib'])} vs {gib(f['peak_gib'])}."
        )
        ratio, peak = f["seconds"] / o["seconds"], ts["ours_full"]["peak_gib"]
        lines.append(
            f"Aims (ours at least 5x faster than Feast, under 3 GiB at {ts['requested']:,} rows): "
            f"speed {'met' if ratio >= 5 else 'NOT met'} ({ratio:.1f}x), memory "
            f"{'met' if peak < 3 else 'NOT met'} ({gib(peak)})."
        )
        if ts["feast_rows"] != ts["requested"]:
            lines.append(
                f"Feast did not manage {ts['requested']:,} rows (see the failed rows above); "
                f"{ts['feast_rows']:,} was the largest size it completed."
            )
        extra = ""
        if c["only_ours"] or c["only_feast"]:
            extra = f" Columns only in ours: {c['only_ours']}; only in Feast: {c['only_feast']}."
        if c.get("row_ids_differ"):
            extra += " The two outputs do not hold the same row ids!"
        lines.append(
            f"Outputs compared cell by cell (sorted by row id; numbers as Float64, NaN as null, "
            f"timestamps UTC µs): **{c['mismatches']:,} mismatching cells** of {c['cells']:,} "
            f"(rows {c['rows'][0]:,} ours / {c['rows'][1]:,} Feast; {c['null_cells']:,} "
            f"null cells).{extra}"
        )
        if c["mismatches"]:
            bad = {k: v for k, v in c["columns"].items() if v}
            lines.append(f"Mismatches per column: {bad}; examples: {c['examples'][:5]}")
    else:
        lines.append("Feast completed no size down to 10,000 rows; nothing to compare.")
    on = r["online"]
    labels = {
        "serving": "serving path (`online_features_with_time`, one customer per read)",
        "batched": "serving path's `provider.online_read`, all keys in one call per view",
        "feast": "Feast `get_online_features` (feature service object, cached store)",
    }
    lines += [
        "",
        f"**b) online reads on `{SERVICE}`** (in-process, SQLite online store after the full "
        f"materialization below; {on['features']} features from 5 views; customers drawn at "
        "random from the ventas feature table):",
        "",
        "| path | customers per call | calls | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for case in on["cases"]:
        lines.append(
            f"| {labels[case['path']]} | {case['batch']} | {case['calls']:,} | "
            f"{case['p50']:.2f} | {case['p99']:.2f} |"
        )
    lines += [
        "",
        f"The three paths returned the same values for {on['sample']} customers "
        f"({on['disagreeing_values']} of {on['checked_values']} values disagree; "
        f"{on['known_online']} of the customers have features online).",
        "",
        "**c) materialization** into the SQLite online store (`lakehouse.features.materialize`, "
        "timed in its child process; rows = entities with a feature row in the window, values = "
        "rows × the view's features):",
        "",
        "| run | view | window | rows | features | values | cells in the online table |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = []
    for label, m in (("full", r["full"]), ("incremental (+1 day)", r["incremental"])):
        values = 0
        for v in m["views"]:
            n = v["rows"] * v["features"]
            values += n
            online = "" if v["online_cells"] is None else f"{v['online_cells']:,}"
            window = f"{v['start'][:16]} .. {v['end'][:16]}"
            lines.append(
                f"| {label} | {v['view']} | {window} | {v['rows']:,} | {v['features']} | "
                f"{n:,} | {online} |"
            )
        totals.append(
            f"| {label} | {values:,} | {m['seconds']:.1f} | {values / m['seconds']:,.0f} | "
            f"{m['wall']:.1f} | {gib(m['peak_gib'])} |"
        )
    for v in r["incremental"]["views"]:
        if v["rows"] == 0 and v["newest"]:
            where = "after the window's end (the mesh clock), which materialization never passes"
            if v["newest"] < v["start"]:
                where = "before the window: no new snapshot was written for the new day"
            lines += [
                "",
                f"`{v['view']}` had no rows in the incremental window: its newest snapshot "
                f"({v['newest'][:19]}) lies {where}.",
            ]
    lines += [
        "",
        "| materialization | feature values | seconds | values/s | process wall s | peak RSS |",
        "|---|---|---|---|---|---|",
        *totals,
        "",
        "Before the incremental materialization (child processes):",
        "",
        "| step | seconds | peak RSS |",
        "|---|---|---|",
        *(f"| `mesh {e['step']}` | {e['seconds']:.1f} | {gib(e['peak_gib'])} |" for e in r["day"]),
        "",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in r['load_end'])}.",
    ]
    return lines


def write_section(title: str, body: list[str], replace: tuple[str, ...] = ()) -> None:
    """Put `### {title}` into docs/benchmarks.md: in place of the first section whose header
    starts with one of `replace` (or has the same title), else at the end."""
    section = "\n".join([f"### {title}", "", *body]).rstrip() + "\n"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    parts = re.split(r"(?m)^(?=### )", text)
    for i, part in enumerate(parts):
        header = part.splitlines()[0] if part else ""
        if header == f"### {title}" or any(header.startswith(p) for p in replace):
            parts[i] = section + "\n"
            break
    else:
        parts[-1] = parts[-1].rstrip() + "\n\n"
        parts.append(section)
    DOC.write_text("".join(parts).rstrip() + "\n")
    print(f"\nwritten to {DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Default data directory: " + str(default_data_dir("<scale>")),
    )
    parser.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--entity-rows", type=int, default=1_000_000, help="training set rows")
    parser.add_argument("--data-dir", type=Path, help="the benchmark mesh (not the repo's data/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the entity frame")
    parser.add_argument(
        "--max-gib", type=float, default=14.0, help="kill a training-set child above this RSS"
    )
    parser.add_argument(
        "--feast-timeout", type=float, default=1800, help="seconds before Feast's run is killed"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each engine for the training set"
    )
    parser.add_argument("--online-calls", type=int, default=1000, help="calls per online case")
    parser.add_argument(
        "--online-seconds", type=float, default=30, help="time budget per online case"
    )
    parser.add_argument("--no-doc", action="store_true", help="print only, do not write docs/")
    args = parser.parse_args()
    load = os.getloadavg()
    data = (args.data_dir or default_data_dir(args.scale)).resolve()
    if data == (ROOT / "data").resolve():
        raise SystemExit("refusing to benchmark in the repo's data/; pass another --data-dir")
    data.mkdir(parents=True, exist_ok=True)
    os.environ["MESH_DATA_DIR"] = str(data)
    env = {**os.environ, "MESH_DATA_DIR": str(data)}
    work = data / "bench"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    log(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; data in {data}")

    r: dict[str, Any] = {"load_end": (0, 0, 0)}
    r["journal"], r["built"] = ensure_mesh(data, args.scale, env)
    info = world(data) or {}
    entities = work / f"entities-{args.entity_rows}.parquet"
    log(f"entity frame of {args.entity_rows:,} rows ...")
    r["entities"] = entity_frame(data, args.entity_rows, args.seed, entities)
    r["training"] = training_sets(entities, args.entity_rows, work, env, args)
    r["full"] = materialize("full", work, env)
    r["online"] = online_reads(data, work, env, args.online_calls, args.online_seconds)
    logs = work / "logs"
    r["day"] = [
        mesh_step("generate --days 1", ["generate", "--days", "1"], env, logs),
        mesh_step("run", ["run"], env, logs),
        mesh_step("features build", ["features", "build"], env, logs),
    ]
    r["incremental"] = materialize("incremental", work, env)
    info_after = world(data) or {}
    r["world"] = (
        f"seed {info.get('seed')}, {info.get('start')} + {info.get('day')} days "
        f"(+1 day by step c: {info_after.get('day')} days)"
    )
    r["load_end"] = os.getloadavg()
    body = [
        f"Machine: {machine()}",
        "Command: `python benchmarks/features.py --scale "
        f"{args.scale} --entity-rows {args.entity_rows}`",
        f"Load average at start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min; "
        "the 2 cores were shared with other people's work)",
        "",
        *report_lines(r, args),
    ]
    print("\n" + "\n".join(body))
    if not args.no_doc:
        write_section(f"features — {datetime.now(UTC):%Y-%m-%d}", body, replace=(OLD_SECTION,))


if __name__ == "__main__":
    main()
