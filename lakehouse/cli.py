"""`mesh`: the command line of the mesh. Thin: every command calls library code.

Heavy libraries (Feast, MLflow, Streamlit, the simulation) are imported inside commands so
that `mesh --help` answers at once.
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
err = Console(stderr=True)
app = typer.Typer(
    help="A local-first data mesh lakehouse with a central feature store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(
    help="Feature store: domain feature tables, Feast registry, online store."
)
app.add_typer(features_app, name="features")
tables_app = typer.Typer(help="Delta tables by name: history and time travel.")
app.add_typer(tables_app, name="tables")
keys_app = typer.Typer(
    help="API keys of service accounts (accounts and grants: domains/access.yml)."
)
app.add_typer(keys_app, name="keys")
STATE = {"debug": False}


class ScaleName(StrEnum):
    tiny = "tiny"
    small = "small"
    medium = "medium"
    large = "large"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    STATE["debug"] = debug


def _generate(
    scale: str | None,
    seed: int | None,
    end_date: date | None,
    days: int | None,
    dirty_share: float,
    force: bool,
) -> None:
    from lakehouse import runs
    from lakehouse.simulation import generate

    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("simulating days", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = generate(scale, seed, end_date, days, dirty_share, force, progress=tick)
    runs.record(
        "generate",
        "ok",
        time.perf_counter() - t0,
        {"scale": result.scale, "seed": result.seed, "end": str(result.end), "rows": result.rows},
    )
    console.print(
        f"[green]world[/] scale={result.scale} seed={result.seed} "
        f"{result.start}..{result.end}: {result.total_rows:,} raw rows "
        f"({result.injected:,} dirty records logged) in {result.seconds:.1f}s"
    )


@app.command()
def generate(
    scale: Annotated[ScaleName | None, typer.Option(help="Size preset (default small).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 42).")] = None,
    end_date: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Last simulated day (default 2026-06-30)."),
    ] = None,
    days: Annotated[
        int | None, typer.Option(help="Append N more days to the existing world.")
    ] = None,
    dirty_share: Annotated[
        float, typer.Option(help="Share of records dirtied like a real source.")
    ] = 0.03,
    force: Annotated[
        bool, typer.Option(help="Replace an existing world (deletes tables).")
    ] = False,
) -> None:
    """Simulate the marketplace and land raw (bronze) Delta tables for every domain."""
    _generate(
        scale.value if scale else None,
        seed,
        end_date.date() if end_date else None,
        days,
        dirty_share,
        force,
    )


def _run_pipelines(domains: list[str] | None, full_refresh: bool = False) -> None:
    from lakehouse.orchestration import run_pipelines
    from lakehouse.registry import load_registry

    registry = load_registry()
    total = len(domains) if domains else len(registry)
    with _progress() as bar:
        task = bar.add_task("domain pipelines", total=total)
        done: list[str] = []

        def on_domain(name: str) -> None:
            bar.update(task, completed=len(done), description=f"pipeline {name}")
            done.append(name)

        results = run_pipelines(domains, registry, on_domain=on_domain, full_refresh=full_refresh)
        bar.update(task, completed=total, description="domain pipelines")
    table = Table(title="mesh run" + (" (full refresh)" if full_refresh else ""))
    for col in ("domain", "status", "rows in", "rows out", "quarantined", "seconds", "tables"):
        table.add_column(
            col, justify="right" if col.startswith(("rows", "quar", "sec")) else "left"
        )
    colours = {"ok": "green", "blocked": "yellow", "failed": "red", "skipped": "magenta"}
    for r in results:
        versions = str(len(r.written))
        table.add_row(
            r.domain, f"[{colours[r.status]}]{r.status}[/]", f"{r.rows_in:,}", f"{r.rows_out:,}",
            f"{r.quarantined:,}", f"{r.seconds:.1f}", versions,
        )  # fmt: skip
    console.print(table)
    problems = [r for r in results if not r.succeeded]
    for r in problems:
        err.print(f"[bold]{r.domain}[/] {r.status}: {r.reason}", highlight=False)
    if problems:
        raise typer.Exit(1)


@app.command()
def run(
    domain: Annotated[
        list[str] | None, typer.Option("--domain", "-d", help="Only these domains (repeatable).")
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild every table from all raw data.")
    ] = False,
) -> None:
    """Run domain pipelines (raw -> curated -> gold) in dependency order, incrementally."""
    _run_pipelines(domain or None, full_refresh)


def _features_build() -> None:
    from lakehouse import runs
    from lakehouse.orchestration import run_features

    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("feature tables", total=None)
        results = run_features(on_domain=lambda n: bar.update(task, description=f"features {n}"))
        bar.update(task, total=1, completed=1, description="feature tables")
    runs.record("features build", "ok", time.perf_counter() - t0, {"rows": results})
    for name, rows in results.items():
        console.print(f"[green]{name}[/] {rows:,} feature rows")


def _features_apply() -> None:
    from lakehouse import features, runs

    t0 = time.perf_counter()
    with console.status("feast apply (loading Feast)..."):
        applied = features.apply()
    runs.record("features apply", "ok", time.perf_counter() - t0, {"objects": applied})
    console.print(f"[green]feast apply[/] registered {', '.join(applied)}")


def _features_materialize(incremental: bool) -> None:
    from lakehouse import features, runs

    t0 = time.perf_counter()
    with console.status("materializing features into the SQLite online store..."):
        summary = features.materialize(incremental=incremental)
    windows = {
        view: f"{start:%Y-%m-%d} .. {end:%Y-%m-%d %H:%M}" for view, (start, end) in summary.items()
    }
    runs.record("features materialize", "ok", time.perf_counter() - t0, {"views": windows})
    for view, window in windows.items():
        console.print(f"[green]materialized[/] {view} ({window})")


@features_app.command("build")
def features_build() -> None:
    """Compute every domain's Delta feature tables from its curated data."""
    _features_build()


@features_app.command("apply")
def features_apply() -> None:
    """Register entities, feature views and services in the Feast registry."""
    _features_apply()


@features_app.command("materialize")
def features_materialize(
    incremental: Annotated[
        bool, typer.Option(help="Only what is new since the last materialization.")
    ] = False,
) -> None:
    """Load the latest feature values into the SQLite online store."""
    _features_materialize(incremental)


@features_app.command("training-set")
def features_training_set(
    service: Annotated[str, typer.Option(help="Feature service.")] = "churn_v2",
    entities: Annotated[
        Path | None,
        typer.Option(
            help="Parquet or CSV with join keys and event_timestamp (default: the churn labels)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the result here (.parquet or .csv).")
    ] = None,
) -> None:
    """Build a point-in-time training set (our ASOF engine over the Delta feature tables)."""
    import polars as pl

    from lakehouse.pit import training_set

    if entities is None:
        from models.churn import build_labels

        entity_df = build_labels()
    elif not entities.exists():
        raise typer.BadParameter(f"{entities} does not exist", param_hint="--entities")
    elif entities.suffix == ".csv":
        entity_df = pl.read_csv(entities, try_parse_dates=True)
    else:
        entity_df = pl.read_parquet(entities)
    t0 = time.perf_counter()
    with console.status(f"point-in-time join of {entity_df.height:,} entity rows on {service}..."):
        frame = training_set(service, entity_df)
    seconds = time.perf_counter() - t0
    console.print(f"[green]{frame.height:,} rows × {frame.width} columns[/] in {seconds:.1f}s")
    if out is None:
        console.print(str(frame.head(10)), highlight=False)
    elif out.suffix == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    if out is not None:
        console.print(f"written to {out}")


@features_app.command("skew")
def features_skew(
    service: Annotated[str, typer.Option(help="Feature service.")] = "churn_v2",
    sample: Annotated[int, typer.Option(help="Customers to compare.")] = 200,
) -> None:
    """Compare online values with offline point-in-time values; non-zero exit on mismatch."""
    from lakehouse import features

    with console.status(f"comparing online and offline {service} for {sample} customers..."):
        report = features.skew(service, sample)
    table = Table(title=f"{service}: online vs offline as of {report.as_of:%Y-%m-%d %H:%M}")
    table.add_column("feature")
    table.add_column("mismatches", justify="right")
    for name, n in report.mismatches.items():
        table.add_row(name, f"[{'red' if n else 'green'}]{n}[/]")
    console.print(table)
    if report.expired_online:
        console.print(f"[yellow]{report.expired_online} customers: online still serves values "
                      "older than the view's TTL (offline returns none)[/]")  # fmt: skip
    for example in report.examples:
        console.print(f"  {example}", highlight=False)
    if not report.ok:
        err.print(f"[bold red]skew:[/] {sum(report.mismatches.values())} mismatching values")
        raise typer.Exit(1)
    console.print(f"[green]no skew[/] across {report.entities} customers")


@features_app.command("ui")
def features_ui(
    port: Annotated[int | None, typer.Option(help="Port (default 8888).")] = None,
) -> None:
    """Start the Feast UI for the feature repository."""
    import subprocess

    from lakehouse import features
    from lakehouse.config import get_settings

    port = port or get_settings().feast_ui_port
    console.print(f"Feast UI on http://127.0.0.1:{port} (Ctrl+C to stop)")
    subprocess.run(
        features.feast_command("ui", "--host", "127.0.0.1", "--port", str(port)), check=False
    )


def _train(scale: str | None = None, seed: int = 42) -> None:
    from lakehouse import runs
    from lakehouse.simulation.generator import world_info
    from models.training import train_all

    t0 = time.perf_counter()
    info = world_info() or {}
    with console.status("training 3 model families on churn_v1 and churn_v2 (MLflow)..."):
        experiment = train_all(scale=scale or info.get("scale"), seed=seed)
    table = Table(title="churn experiment (validation)")
    for col in ("feature service", "family", "ROC AUC", "PR AUC", "precision@10%", "run"):
        table.add_column(col, justify="right" if col[0].isupper() or "@" in col else "left")
    for r in experiment.runs:
        m = r.metrics
        table.add_row(
            r.feature_service, r.family, f"{m['roc_auc']:.3f}", f"{m['pr_auc']:.3f}",
            f"{m['precision_at_10pct']:.3f}", r.run_id[:8],
        )  # fmt: skip
    console.print(table)
    verb = "promoted to" if experiment.promoted else "kept as"
    console.print(
        f"model [bold]churn[/] version {experiment.champion_version} {verb} @champion "
        f"(run {experiment.champion_run[:8]})"
    )
    runs.record(
        "train",
        "ok",
        time.perf_counter() - t0,
        {"runs": [r.run_id for r in experiment.runs], "champion": experiment.champion_version},
    )


def _reproduce(run_id: str) -> None:
    from models.reproduce import reproduce

    with console.status(f"rebuilding the training set of run {run_id} by Delta time travel..."):
        report = reproduce(run_id)
    for line in report.lines():
        console.print(line, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def train(
    reproduce: Annotated[
        str | None,
        typer.Option(help="Rebuild and retrain a logged run by Delta time travel, and compare."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the models.")] = 42,
) -> None:
    """Train the churn models (3 families × churn_v1/churn_v2) and update the champion."""
    if reproduce:
        _reproduce(reproduce)
    else:
        _train(seed=seed)


def _score() -> None:
    from models import scoring

    with console.status("scoring active customers with the champion churn model..."):
        result = scoring.score()
    console.print(f"[green]score[/] {result.summary()}", highlight=False)
    for reason in result.blocked:
        err.print(f"[bold]blocked[/] {reason}", highlight=False)
    if result.blocked:
        raise typer.Exit(1)


@app.command()
def score() -> None:
    """Score every active customer with the champion churn model into marketing.churn_risk."""
    _score()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """Serve the data product APIs (OpenAPI docs at /docs)."""
    import os

    # Requests score one row: OpenMP threads per tree cost ~1 ms each and only add contention,
    # in every request thread, so the server process runs single-threaded numerics.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from lakehouse.config import get_settings

    s = get_settings()
    console.print(f"API docs on http://{host or s.api_host}:{port or s.api_port}/docs")
    console.print(
        "[dim]Endpoints need an X-API-Key header: `mesh keys create ACCOUNT` issues one "
        "(accounts: `mesh keys list`). /health and /metrics are open. Rate limits are per worker."
    )
    uvicorn.run(
        "app.api:create_app",
        factory=True,
        host=host or s.api_host,
        port=port or s.api_port,
        workers=workers,
        log_level="warning" if workers > 1 else "info",
    )


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (default 8501).")] = None,
) -> None:
    """Open the Streamlit dashboard of the mesh."""
    import subprocess

    from lakehouse.config import PROJECT_ROOT, get_settings

    port = port or get_settings().dashboard_port
    console.print(f"Dashboard on http://localhost:{port} (Ctrl+C to stop)")
    subprocess.run(
        [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app" / "dashboard.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        check=False,
    )  # fmt: skip


@app.command("mlflow")
def mlflow_ui(
    port: Annotated[int | None, typer.Option(help="Port (default 5000).")] = None,
) -> None:
    """Start the MLflow UI on the local tracking store."""
    import subprocess

    from lakehouse.config import get_settings
    from models.churn import mlflow_uri

    port = port or get_settings().mlflow_port
    console.print(f"MLflow UI on http://127.0.0.1:{port} (Ctrl+C to stop)")
    subprocess.run(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", mlflow_uri(),
         "--host", "127.0.0.1", "--port", str(port)],
        check=False,
    )  # fmt: skip


@app.command()
def build(
    scale: Annotated[
        ScaleName, typer.Option(help="Size preset for a new world.")
    ] = ScaleName.small,
    seed: Annotated[int, typer.Option(help="Random seed for a new world.")] = 42,
) -> None:
    """Build everything in order: generate, run, features build/apply/materialize, train, score."""
    from lakehouse.simulation.generator import world_info

    info = world_info()
    if info is None:
        _generate(scale.value, seed, None, None, 0.03, False)
    elif info["scale"] != scale.value or info["seed"] != seed:
        raise typer.BadParameter(
            f"the stored world is scale {info['scale']} seed {info['seed']}; run "
            f"`mesh generate --scale {scale.value} --seed {seed} --force` to replace it"
        )
    else:
        console.print(
            f"[dim]reusing the stored world (scale {info['scale']}, through {info['end']})"
        )
    _run_pipelines(None)
    _features_build()
    _features_apply()
    _features_materialize(False)
    _train()
    _score()
    _print_next_steps()


def _print_next_steps() -> None:
    from lakehouse.config import get_settings

    s = get_settings()
    table = Table(title="The mesh is built. Open it:", show_lines=False)
    table.add_column("what")
    table.add_column("command")
    table.add_column("then open")
    table.add_row("Dashboard", "mesh dashboard", f"http://localhost:{s.dashboard_port}")
    table.add_row("API docs", "mesh serve", f"http://{s.api_host}:{s.api_port}/docs")
    table.add_row("MLflow UI", "mesh mlflow", f"http://127.0.0.1:{s.mlflow_port}")
    table.add_row("Feast UI", "mesh features ui", f"http://127.0.0.1:{s.feast_ui_port}")
    console.print(table)
    console.print("[dim](run them from the project folder with .venv/bin/mesh, or activate .venv)")
    console.print(
        "[dim]API calls need a key: `mesh keys create platform-admin` (accounts: `mesh keys list`)"
    )


@app.command()
def status() -> None:
    """Show what exists: the world, every Delta table (version, rows), the last runs."""
    from lakehouse import runs, storage
    from lakehouse.simulation.generator import world_info

    info = world_info()
    if info is None:
        console.print("No world yet: run `mesh build` (or `mesh generate`).")
        raise typer.Exit(0)
    console.print(
        f"World: scale [bold]{info['scale']}[/], seed {info['seed']}, "
        f"{info['start']} .. {info['end']}"
    )
    table = Table(title="Delta tables")
    for col in ("domain", "layer", "table", "version", "rows"):
        table.add_column(col, justify="right" if col in ("version", "rows") else "left")
    for domain, layer, name, path in storage.list_tables():
        table.add_row(
            domain, layer, name, str(storage.version(path)), f"{storage.row_count(path):,}"
        )
    console.print(table)
    last = runs.latest()
    if last:
        rt = Table(title="Last runs")
        for col in ("step", "status", "finished", "seconds", "process peak RSS"):
            rt.add_column(col)
        for step, entry in last.items():
            colour = "green" if entry["status"] == "ok" else "red"
            peak = entry.get("peak_rss_mib")
            rt.add_row(
                step,
                f"[{colour}]{entry['status']}[/]",
                entry["finished_at"],
                str(entry["seconds"]),
                "" if peak is None else f"{peak / 1024:.2f} GiB",
            )
        console.print(rt)


@tables_app.command("history")
def tables_history(
    name: Annotated[str, typer.Argument(help="domain.product or domain.layer.table")],
    limit: Annotated[int | None, typer.Option(help="Only the newest N versions.")] = None,
) -> None:
    """Show the versions of a table (newest first)."""
    from lakehouse import tables

    frame = tables.history(name, limit)
    table = Table(title=f"{name} history")
    for col in frame.columns:
        table.add_column(col)
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@tables_app.command("show")
def tables_show(
    name: Annotated[str, typer.Argument(help="domain.product or domain.layer.table")],
    version: Annotated[int | None, typer.Option(help="Read this version (time travel).")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Read the table as of this ISO timestamp.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Print a table now, at a version, or as of a timestamp."""
    import polars as pl

    from lakehouse import tables

    frame = tables.read(name, version=version, as_of=as_of)
    with pl.Config(tbl_rows=limit, tbl_cols=20, tbl_width_chars=console.width):
        console.print(str(frame.head(limit)), highlight=False)
    console.print(f"[dim]{frame.height:,} rows[/]")


@keys_app.command("list")
def keys_list() -> None:
    """Show service accounts, what each may read, its rate limit and its issued keys."""
    from lakehouse import access
    from lakehouse.registry import load_registry

    policy = access.load_policy()
    products = [p.qualified_name for p in load_registry().products()]
    products += [p.name for p in policy.platform_products]
    issued: dict[str, list[str]] = {}
    for key in access.list_keys():
        issued.setdefault(key["account"], []).append(f"{key['key_id']} ({key['created_at']})")
    table = Table(title=f"Service accounts ({access.access_file()})", show_lines=True)
    for column in ("account", "owner", "may read", "per minute", "keys"):
        table.add_column(column, overflow="fold")
    for account in policy.accounts:
        readable = policy.products_of(account, products)
        shown = "every product except restricted" if account.admin else ", ".join(readable)
        table.add_row(
            account.name,
            account.owner,
            shown,
            str(account.rate_limit_per_minute),
            "\n".join(issued.get(account.name, [])) or "-",
        )
    console.print(table)


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Argument(help="An account from `mesh keys list`.")],
) -> None:
    """Issue a new API key for an existing account and print it once (stored only hashed)."""
    from lakehouse import access

    key = access.create_key(account)
    console.print(f"[green]new key for {account}[/] (shown once; only its hash is stored):")
    console.print(key, highlight=False, soft_wrap=True)
    console.print("[dim]send it in the X-API-Key header; `mesh serve` lists the endpoints at /docs")


contracts_app = typer.Typer(help="Data contracts: ODCS per product, OpenAPI per domain API.")
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("check")
def contracts_check(
    against: Annotated[
        str | None,
        typer.Option(help="Git revision to compare with (default: merge-base of HEAD and main)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Classify contract changes since a revision; exit 1 on breaking ones without a new major."""
    from lakehouse.compat import run_check

    raise typer.Exit(run_check(against, as_json, console))


@contracts_app.command("openapi")
def contracts_openapi(
    check: Annotated[
        bool, typer.Option("--check", help="Only report domains whose file is out of date.")
    ] = False,
) -> None:
    """Write each domain's served OpenAPI to domains/<d>/contracts/openapi.yaml."""
    from app.api import create_app
    from lakehouse import openapi

    spec = create_app().openapi()
    if check:
        stale = openapi.drift(spec)
        for name in stale:
            err.print(f"{name}: committed OpenAPI differs from the served API")
        if stale:
            err.print("run `mesh contracts openapi`, review the diff and commit it")
        raise typer.Exit(1 if stale else 0)
    for path in openapi.write_documents(spec):
        console.print(f"wrote {path}")


def main() -> None:
    """Console-script entry: one clear error line and a non-zero exit, unless --debug."""
    try:
        app()
    except Exception as exc:
        if STATE["debug"] or "--debug" in sys.argv:
            raise
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        err.print("[dim](run with --debug for the full traceback)[/]")
        sys.exit(1)
