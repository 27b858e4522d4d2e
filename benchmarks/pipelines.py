"""Benchmark `mesh run`: a full run over a fresh world, then an incremental run after one new day.

Each run is a child process (peak RSS is its own); per-domain rows and seconds come from the
run journal (data/runs). Figures are printed and appended to docs/benchmarks.md.

    python benchmarks/pipelines.py --scale medium
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from generate import DOC, machine  # type: ignore[import-not-found]

MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a mesh command; returns (wall seconds, peak RSS GiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*MESH, *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"`mesh {' '.join(args)}` failed (status {status})")
    return time.perf_counter() - t0, usage.ru_maxrss / 2**20


def domain_figures(data: Path, since: float) -> list[tuple[str, int, int, float]]:
    """(domain, rows in, rows out, seconds) of the pipeline runs journalled after `since`."""
    rows = []
    for f in sorted((data / "runs").glob("*.json")):
        entry = json.loads(f.read_text())
        finished = datetime.fromisoformat(entry["finished_at"]).timestamp()
        if entry["step"].startswith("pipeline ") and finished >= since:
            d = entry["details"]
            rows.append((entry["step"].split()[1], d["rows_in"], d["rows_out"], entry["seconds"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix=f"mesh-bench-run-{args.scale}-"))
    env = {**os.environ, "MESH_DATA_DIR": str(data)}
    gen_s, gen_mem = timed(["generate", "--scale", args.scale], env)
    lines = [f"generate {args.scale}: {gen_s:.1f} s, peak {gen_mem:.2f} GiB", ""]
    header = "| run | domain | rows in | rows out | seconds | rows in/s |"
    table = [header, "|---|---|---|---|---|---|"]
    totals = []
    for label, cmd in (("full", ["run"]), ("incremental (+1 day)", None)):
        if cmd is None:
            timed(["generate", "--days", "1"], env)
            cmd = ["run"]
        started = time.time()
        wall, peak = timed(cmd, env)
        for domain, rows_in, rows_out, secs in domain_figures(data, started - 1):
            rate = f"{rows_in / secs:,.0f}" if secs > 0 else "-"
            table.append(
                f"| {label} | {domain} | {rows_in:,} | {rows_out:,} | {secs:.1f} | {rate} |"
            )
        totals.append(f"{label} `mesh run`: {wall:.1f} s wall, peak RSS {peak:.2f} GiB")
    report = [*lines, *totals, "", *table]
    print("\n".join(report))
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    if args.no_doc:
        return
    section = [
        f"### pipelines — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Machine: {machine()}",
        f"Command: `python benchmarks/pipelines.py --scale {args.scale}`",
        "",
        *report,
        "",
    ]
    DOC.write_text(DOC.read_text().rstrip() + "\n\n" + "\n".join(section))
    print(f"\nwritten to {DOC}")


if __name__ == "__main__":
    main()
