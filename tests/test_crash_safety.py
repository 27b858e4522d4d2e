"""Kill `mesh run` with SIGKILL in the middle of its writes: every table stays at a committed
version, and the next run finishes the work with nothing duplicated and nothing lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipelines import snapshot

from lakehouse import storage
from lakehouse.config import reset_settings
from lakehouse.orchestration import run_pipelines
from lakehouse.simulation import generate

pytestmark = pytest.mark.slow
MESH = [sys.executable, "-c", "from lakehouse.cli import main; main()"]


def _use(root: Path) -> None:
    os.environ["MESH_DATA_DIR"] = str(root)
    reset_settings()


def _commits(root: Path) -> int:
    """Delta commits written so far by pipelines (raw tables excluded)."""
    return sum(
        1 for log in (root / "lakehouse").glob("*/*/*/_delta_log/*.json") if log.parts[-4] != "raw"
    )


def _kill_after(root: Path, commits: int) -> None:
    """Start `mesh run` and SIGKILL it as soon as it has made `commits` new commits."""
    env = {**os.environ, "MESH_DATA_DIR": str(root)}
    start = _commits(root)
    proc = subprocess.Popen([*MESH, "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _commits(root) - start >= commits:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


@pytest.mark.parametrize("commits", [2, 9, 20, 33])
def test_killed_run_recovers_to_the_same_tables(
    commits: int, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    old = os.environ.get("MESH_DATA_DIR")
    try:
        world = tmp_path_factory.getbasetemp() / "crash-world"
        if not world.exists():
            _use(world)
            generate("tiny", seed=33)
        reference = tmp_path / "reference"
        shutil.copytree(world, reference)
        _use(reference)
        run_pipelines()
        expected = snapshot()

        crashed = tmp_path / "crashed"
        shutil.copytree(world, crashed)
        _kill_after(crashed, commits)
        _use(crashed)
        for _, _, name, path in storage.list_tables():  # every table reads at a committed version
            storage.read(path)
            assert storage.version(path) is not None, name
        results = run_pipelines()
        assert all(r.status == "ok" for r in results), [(r.domain, r.reason) for r in results]
        recovered = snapshot()
        assert recovered.keys() == expected.keys()
        for name, df in expected.items():
            assert recovered[name].equals(df), name
    finally:
        if old is None:
            os.environ.pop("MESH_DATA_DIR", None)
        else:
            os.environ["MESH_DATA_DIR"] = old
        reset_settings()
