"""The `mesh` command line: fast help, one-line errors, status of a real world."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


def mesh(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESH_DATA_DIR": str(data), "COLUMNS": "200"}
    return subprocess.run([*MESH, *args], env=env, capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_without_heavy_imports() -> None:
    probe = (
        "import sys\n"
        "from lakehouse.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('feast', 'mlflow', 'streamlit', 'sklearn', 'deltalake') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    for command in (
        "generate",
        "run",
        "features",
        "train",
        "serve",
        "dashboard",
        "build",
        "status",
    ):
        assert command in out.stdout


def test_errors_are_one_clear_line_and_nonzero(tmp_path: Path) -> None:
    result = mesh("generate", "--days", "2", data=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no world to append to" in result.stderr
    assert "mesh generate --scale small" in result.stderr
    debug = mesh("--debug", "generate", "--days", "2", data=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bad_arguments_are_rejected_by_the_parser(tmp_path: Path) -> None:
    result = mesh("generate", "--scale", "huge", data=tmp_path)
    assert result.returncode == 2
    assert "huge" in result.stderr and "tiny" in result.stderr
    bad_date = mesh("generate", "--end-date", "31/12/2025", data=tmp_path)
    assert bad_date.returncode == 2 and "%Y-%m-%d" in bad_date.stderr


def test_generate_then_status_then_run_one_domain(tmp_path: Path) -> None:
    assert mesh("status", data=tmp_path).stdout.startswith("No world yet")
    gen = mesh("generate", "--scale", "tiny", "--seed", "3", data=tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert "scale=tiny seed=3" in gen.stdout
    again = mesh("generate", "--scale", "tiny", data=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    run = mesh("run", "--domain", "producto", data=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "│ producto │ ok" in run.stdout
    unknown = mesh("run", "--domain", "ventaz", data=tmp_path)
    assert unknown.returncode == 1 and "unknown domain" in unknown.stderr
    status = mesh("status", data=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "scale tiny" in status.stdout
    assert "catalog" in status.stdout and "orders" in status.stdout
    assert "pipeline producto" in status.stdout


def test_tables_history_and_time_travel_from_the_cli(tmp_path: Path) -> None:
    assert mesh("generate", "--scale", "tiny", "--seed", "4", data=tmp_path).returncode == 0
    assert mesh("run", data=tmp_path).returncode == 0
    assert mesh("generate", "--days", "2", data=tmp_path).returncode == 0
    assert mesh("run", data=tmp_path).returncode == 0
    history = mesh("tables", "history", "ventas.daily_revenue", data=tmp_path)
    assert history.returncode == 0, history.stderr
    assert "MERGE" in history.stdout and "WRITE" in history.stdout
    old = mesh("tables", "show", "ventas.daily_revenue", "--version", "0", data=tmp_path)
    new = mesh("tables", "show", "ventas.daily_revenue", data=tmp_path)
    assert old.returncode == new.returncode == 0
    rows = [int(o.stdout.split(" rows")[0].split()[-1].replace(",", "")) for o in (old, new)]
    assert rows[1] > rows[0]
    missing = mesh("tables", "show", "ventas.nope", data=tmp_path)
    assert missing.returncode == 1 and "tables of ventas" in missing.stderr
    too_far = mesh("tables", "show", "ventas.daily_revenue", "--version", "99", data=tmp_path)
    assert too_far.returncode == 1 and "versions 0.." in too_far.stderr


def test_run_reports_a_failed_domain_and_exits_nonzero(tmp_path: Path) -> None:
    assert mesh("generate", "--scale", "tiny", "--seed", "6", data=tmp_path).returncode == 0
    shutil.rmtree(tmp_path / "lakehouse" / "logistica" / "raw" / "returns")
    result = mesh("run", data=tmp_path)
    assert result.returncode == 1
    assert "│ logistica │ failed" in result.stdout
    assert "│ marketing │ ok" in result.stdout  # unrelated domains still ran
    assert "logistica failed" in result.stderr and "returns" in result.stderr
