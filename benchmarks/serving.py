"""Benchmark `POST /churn/v1/predict` over HTTP on loopback, open loop.

Requests leave on a fixed schedule whether or not earlier ones returned, and latency is counted
from the scheduled send time, so queueing shows. Needs a built mesh (`mesh build`); uses the
data directory of MESH_DATA_DIR (default data/). Figures are printed and appended to
docs/benchmarks.md.

    python benchmarks/serving.py [--rate 200 --seconds 30] [--search]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import numpy as np
from generate import DOC, machine  # type: ignore[import-not-found]

MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def open_loop(url: str, ids: list[int], rate: float, seconds: float) -> dict[str, float]:
    """Send rate*seconds requests on schedule; returns p50/p99 (ms), errors and achieved rate."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                r = await client.post(url, json={"customer_id": ids[i % len(ids)]})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - due) * 1000)
            errors += not ok

        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    arr = np.array(latencies)
    return {
        "requests": n,
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "errors": errors,
        "rate": n / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--search", action="store_true", help="also find the max rate, p99<50ms")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    port = _port()
    server = subprocess.Popen(
        [*MESH, "serve", "--port", str(port), "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        from lakehouse.features import online_features

        candidates = list(range(1, 400))
        online = online_features("churn_v2", candidates)
        ids = [c for c, v in zip(candidates, online["total_purchases_30d"], strict=True) if v]
        url = f"{base}/churn/v1/predict"
        with httpx.Client(timeout=60) as warm:  # each worker loads the champion once
            for _ in range(100):
                warm.post(url, json={"customer_id": ids[0]})
        lines = []
        r = asyncio.run(open_loop(url, ids, args.rate, args.seconds))
        lines.append(
            f"| {args.rate:.0f} req/s for {args.seconds:.0f} s | {r['requests']:,} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} |"
        )
        best = None
        if args.search:
            for rate in (300, 400, 600, 800, 1000, 1300):
                s = asyncio.run(open_loop(url, ids, rate, 10))
                lines.append(
                    f"| {rate} req/s for 10 s | {s['requests']:,} | {s['p50']:.1f} | "
                    f"{s['p99']:.1f} | {s['errors']} |"
                )
                if s["p99"] < 50 and not s["errors"]:
                    best = rate
                else:
                    break
    finally:
        server.terminate()
        server.wait(timeout=30)
    header = ["| load (open loop) | requests | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]
    report = [*header, *lines]
    if args.search:
        report.append(f"\nHighest tested rate with p99 under 50 ms: {best or 'none'} req/s")
    print("\n".join(report))
    if args.no_doc:
        return
    section = [
        f"### serving — {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"Machine: {machine()}",
        "Command: `python benchmarks/serving.py" + (" --search`" if args.search else "`"),
        f"({args.workers} uvicorn worker(s); the load generator shares the 2 cores)",
        "",
        *report,
        "",
    ]
    DOC.write_text(DOC.read_text().rstrip() + "\n\n" + "\n".join(section))


if __name__ == "__main__":
    main()
