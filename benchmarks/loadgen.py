"""Open-loop HTTP load on loopback, shared by benchmarks/serving.py and benchmarks/api.py.

Requests leave on a fixed schedule whether or not earlier ones returned, and latency is counted
from the scheduled send time, so queueing shows. The load generator is a minimal HTTP/1.1
keep-alive client on asyncio (uvloop when installed): httpx costs about a millisecond of CPU per
request, which on a 2-core machine competes with the server it measures. `Server` pins `mesh
serve` to one core and the caller to the others (unless told not to); other processes on the
machine are not controlled, so the load average is recorded with every run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from generate import DOC  # type: ignore[import-not-found]

MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]
P99_LIMIT_MS = 50.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# uvicorn closes a keep-alive connection after 5 s idle (timeout_keep_alive); reusing one that
# old could meet the server's close, so such connections are dropped instead.
MAX_IDLE_SECONDS = 4.0


class Loopback:
    """Keep-alive HTTP/1.1 connections to one server, opened on demand and reused: enough HTTP to
    send pre-encoded requests and read Content-Length responses, a few microseconds each."""

    def __init__(self, port: int, max_connections: int = 512) -> None:
        self.port = port
        self.max_connections = max_connections
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def _connection(self) -> Connection:
        while True:
            while not self.idle and self.opened >= self.max_connections:
                async with self.freed:
                    await self.freed.wait()
            if not self.idle:
                break
            reader, writer, since = self.idle.pop()
            if not reader.at_eof() and time.perf_counter() - since < MAX_IDLE_SECONDS:
                return reader, writer
            writer.close()
            self.opened -= 1
        self.opened += 1
        try:
            return await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            self.opened -= 1
            raise

    async def send(self, raw: bytes) -> int:
        """Send one pre-encoded request; returns the status code."""
        reader, writer = await self._connection()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if match is None:
                raise ConnectionError("response without Content-Length")
            await reader.readexactly(int(match.group(1)))
        except BaseException:
            writer.close()
            self.opened -= 1
            async with self.freed:
                self.freed.notify()
            raise
        self.idle.append((reader, writer, time.perf_counter()))
        async with self.freed:
            self.freed.notify()
        return status

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def raw_request(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request, encoded once so that sending it costs nothing per request."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, server_pid: int | None = None
) -> dict[str, Any]:
    """Send rate*seconds requests on schedule; returns p50/p99/max latency (ms, from the scheduled
    time), errors, the generator's own lateness and CPU share, and the server's CPU per request."""
    n = int(rate * seconds)
    client = Loopback(port)
    latencies = np.empty(n)
    late = np.empty(n)
    errors: Counter[str] = Counter()

    async def one(i: int, due: float) -> None:
        try:
            status = await asyncio.wait_for(client.send(requests[i % len(requests)]), 10)
            if status != 200:
                errors[f"HTTP {status}"] += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
        latencies[i] = (time.perf_counter() - due) * 1000

    load_before = _load()
    server_cpu = _cpu_seconds(server_pid) if server_pid else 0.0
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.2
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late[i] = (time.perf_counter() - due) * 1000
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    client.close()
    server_cpu = (_cpu_seconds(server_pid) - server_cpu) if server_pid else float("nan")
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": n,
        "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)),
        "max": float(latencies.max()),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "achieved": n / elapsed,
        "send_late_p99": float(np.percentile(late, 99)),
        "generator_cpu": (time.process_time() - cpu0) / elapsed,
        "server_cpu_ms": server_cpu * 1000 / n,
        "load_before": load_before,
        "load_after": _load(),
    }


def closed_loop(port: int, requests: list[bytes], n: int = 2000) -> dict[str, float]:
    """One client, sequential, keep-alive: the latency of a request that never queues."""

    async def run() -> list[float]:
        client = Loopback(port, max_connections=1)
        out = []
        for i in range(n):
            t = time.perf_counter()
            await client.send(requests[i % len(requests)])
            out.append((time.perf_counter() - t) * 1000)
        client.close()
        return out

    arr = np.array(_run(run()))
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _settle(base: str, timeout: float = 60) -> None:
    """Wait until the server has worked off any backlog (an overloaded run leaves one): /health
    answers within 20 ms three times in a row."""
    deadline = time.perf_counter() + timeout
    quick = 0
    with httpx.Client(timeout=timeout) as client:
        while quick < 3 and time.perf_counter() < deadline:
            t = time.perf_counter()
            client.get(f"{base}/health")
            quick = quick + 1 if time.perf_counter() - t < 0.02 else 0
            time.sleep(0.2)
    time.sleep(1)


def _passes(r: dict[str, Any], limit: float) -> bool:
    return r["p99"] < limit and not r["errors"]


def search(
    measure: Callable[[float], dict[str, Any]],
    first: dict[str, Any],
    max_runs: int,
    budget: float,
    limit: float = P99_LIMIT_MS,
) -> tuple[float | None, list[dict[str, Any]]]:
    """Highest rate with p99 under `limit` ms and no errors, starting from the run `first`:
    double the rate until a run fails, then bisect between the highest pass and the lowest fail
    until they are within 5 % (or 10 req/s); at most `max_runs` runs and `budget` seconds."""
    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    passed: float | None = first["rate"] if _passes(first, limit) else None
    failed: float | None = None if passed else first["rate"]
    while len(runs) < max_runs and time.perf_counter() - t0 < budget:
        if failed is None:
            rate = 2 * (passed or 0.0)
        else:
            low = passed or 0.0
            if failed - low <= max(0.05 * failed, 10):
                break
            rate = round((low + failed) / 2)
        r = measure(rate)
        runs.append(r)
        if _passes(r, limit):
            passed = max(rate, passed or 0.0)
        else:
            failed = min(rate, failed or rate)
    return passed, runs


def _errors(r: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} ×{v}" for k, v in sorted(r["error_kinds"].items()))
    return f"{r['errors']} ({kinds})" if kinds else "0"


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['rate']:.0f} req/s for {r['seconds']:.0f} s | {r['requests']:,} | {r['p50']:.1f} "
        f"| {r['p99']:.1f} | {r['max']:.0f} | {_errors(r)} | {r['send_late_p99']:.1f} "
        f"| {r['server_cpu_ms']:.2f} | {r['generator_cpu']:.0%} | {r['load_before']} |"
    )


HEADER = [
    "| load (open loop) | requests | p50 ms | p99 ms | max ms | errors | generator late p99 ms "
    "| server CPU ms/req | generator CPU | load avg 1/5/15 min before |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def write_section(name: str, section: list[str]) -> None:
    """Replace the `### <name>` section of docs/benchmarks.md (append if there is none)."""
    text = DOC.read_text().rstrip() + "\n"
    new = "\n".join(section).rstrip() + "\n"
    match = re.search(rf"^### {name}\b.*?(?=^### |\Z)", text, flags=re.S | re.M)
    if match:
        text = text[: match.start()] + new + "\n" + text[match.end() :]
    else:
        text += "\n" + new
    DOC.write_text(text.rstrip() + "\n")


class Server:
    """`mesh serve` on a free loopback port, pinned to the first core (the caller to the rest)."""

    def __init__(self, workers: int = 1, pin: bool = True) -> None:
        self.cpus = sorted(os.sched_getaffinity(0))
        self.workers = workers
        self.pin = pin and workers == 1 and len(self.cpus) >= 2
        self.port = _port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        first = self.cpus[0]
        self.process = subprocess.Popen(
            [*MESH, "serve", "--port", str(self.port), "--workers", str(self.workers)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
            preexec_fn=(lambda: os.sched_setaffinity(0, {first})) if self.pin else None,
        )  # fmt: skip
        if self.pin:
            os.sched_setaffinity(0, set(self.cpus[1:]))
        for _ in range(240):
            if self.process.poll() is not None:
                raise SystemExit(f"`mesh serve` exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.base}/health", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.5)
        raise SystemExit("`mesh serve` did not answer /health within 2 minutes")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    @property
    def placement(self) -> str:
        """Where the server and the load generator ran, for the report."""
        if self.pin:
            rest = self.cpus[1:]
            return f"server pinned to core {self.cpus[0]}, load generator to core(s) {rest}"
        return "server and load generator share the cores"


def bench(
    server: Server,
    requests: list[bytes],
    args: argparse.Namespace,
    label: str,
) -> tuple[list[str], list[str]]:
    """Closed loop, one open-loop run at --rate for --seconds and, with --search, the highest
    rate under 50 ms; returns (table rows, summary lines) and prints them as they come."""
    # Imports (Feast, Polars) left many objects in this process; a full collection of them in the
    # middle of a run would show up as the generator's lateness.
    gc.collect()
    gc.freeze()
    closed = closed_loop(server.port, requests)
    pid = server.process.pid if server.process and server.workers == 1 else None

    def measure(rate: float, seconds: float = args.search_seconds) -> dict[str, Any]:
        r = _run(open_loop(server.port, requests, rate, seconds, pid))
        r["label"] = label
        print(_row(r), flush=True)
        _settle(server.base)
        return r

    print(f"\n{label}\n" + "\n".join(HEADER), flush=True)
    runs = [measure(args.rate, args.seconds)]
    best = None
    if args.search:
        best, found = search(measure, runs[0], args.search_runs, args.search_budget)
        runs.extend(found)
    summary = [
        f"{label}: closed loop (one client, sequential, keep-alive, 2,000 requests) "
        f"p50 {closed['p50']:.1f} ms, p99 {closed['p99']:.1f} ms."
    ]
    if args.search:
        summary.append(
            f"{label}: highest rate with p99 under {P99_LIMIT_MS:.0f} ms and no errors "
            f"(`--search`, {args.search_seconds:.0f} s runs, doubling then bisection): "
            f"{f'{best:.0f} req/s' if best else 'none'}."
        )
    print("\n".join(summary), flush=True)
    return [_row(r) for r in runs], summary


def arguments(description: str) -> argparse.ArgumentParser:
    """The command-line options both HTTP benchmarks share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30, help="length of the main run")
    parser.add_argument("--search", action="store_true", help="also find the max rate, p99<50ms")
    parser.add_argument("--search-seconds", type=float, default=10, help="length of a search run")
    parser.add_argument("--search-runs", type=int, default=10, help="at most this many runs")
    parser.add_argument("--search-budget", type=float, default=300, help="seconds of searching")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the docs alone")
    return parser


def command(script: str, args: argparse.Namespace) -> str:
    """The command line that reproduces a run, for the report."""
    flags = " --search" if args.search else ""
    flags += "" if args.rate == 200 else f" --rate {args.rate:g}"
    flags += "" if args.seconds == 30 else f" --seconds {args.seconds:g}"
    return f"python benchmarks/{script}{flags}"


def load_test_key() -> str:
    """A fresh API key of the `load-test` account (limit high enough for any rate here)."""
    from lakehouse.access import create_key

    return create_key("load-test")
