"""Benchmark `mesh generate`: rows per second and peak memory per scale.

Each scale runs in its own child process in a temporary data directory, so peak RSS is that
generation's alone. Figures are printed and written to docs/benchmarks.md.

    python benchmarks/generate.py --scales small medium [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
CHILD = """
import json, sys
from lakehouse.simulation import generate
r = generate(sys.argv[1], seed=42)
print(json.dumps({"rows": r.total_rows, "seconds": r.seconds, "days": r.days}))
"""


def machine() -> str:
    """One line describing the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 2**20:.0f} GiB"
    except OSError:
        mem = "?"
    return f"{os.cpu_count()} cores, {mem}, {cpu}, Python {platform.python_version()}"


def run_scale(scale: str, keep: bool) -> dict[str, float]:
    """Generate one scale in a child process; returns rows, seconds, rows/s and peak RSS."""
    folder = Path(tempfile.mkdtemp(prefix=f"mesh-bench-{scale}-"))
    env = {**os.environ, "MESH_DATA_DIR": str(folder)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, scale], env=env, stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = json.loads(proc.stdout.read().strip().splitlines()[-1]) if proc.stdout else {}
    if status != 0:
        raise SystemExit(f"generation at {scale} failed (status {status})")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    if not keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return {
        "rows": out["rows"],
        "seconds": out["seconds"],
        "wall": wall,
        "rows_per_s": out["rows"] / out["seconds"],
        "peak_gib": usage.ru_maxrss / 2**20,
        "disk_gib": size / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["tiny", "small"])
    parser.add_argument("--keep", action="store_true", help="keep the generated data folders")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not write docs/")
    args = parser.parse_args()
    rows = []
    header = "| scale | raw rows | seconds | rows/s | peak RSS | on disk |"
    print(header)
    for scale in args.scales:
        r = run_scale(scale, args.keep)
        line = (
            f"| {scale} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['peak_gib']:.2f} GiB | {r['disk_gib']:.2f} GiB |"
        )
        print(line, flush=True)
        rows.append(line)
    if args.no_doc:
        return
    section = "\n".join(
        [
            f"### generate — {datetime.now(UTC):%Y-%m-%d}",
            "",
            f"Machine: {machine()}",
            f"Command: `python benchmarks/generate.py --scales {' '.join(args.scales)}`",
            "",
            header,
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    DOC.write_text(text.rstrip() + "\n\n" + section)
    print(f"\nwritten to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
