"""Benchmark `mesh train`: time of each model family on each feature service, with its score.

Runs models.training.train_all (what `mesh train` runs: labels, one point-in-time training set
per feature service, three families on each, six MLflow runs, the champion alias) in a child
process on the mesh benchmarks/features.py built, timing each step by wrapping the module's own
functions. MLflow data stays in that mesh's data directory. Figures are printed and written to
docs/benchmarks.md as a "### training — <date>" section.

    python benchmarks/training.py [--scale medium] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from features import (  # type: ignore[import-not-found]
    FEATURE_TABLES,
    default_data_dir,
    feature_tables_missing,
    log,
    run_child,
    world,
    write_section,
)
from generate import machine  # type: ignore[import-not-found]

CHILD = """
import json, sys, time
result_path, seed, scale = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t_start = time.perf_counter()
import mlflow
from sklearn.pipeline import Pipeline
import models.training as T
from lakehouse import __version__

out = {"frames": {}, "runs": []}
state = {"service": None, "depth": 0, "fit": None}

def say(message):
    print(f"[{time.strftime('%H:%M:%S')}]   {message}", flush=True)

# `mesh train` tags runs with `git rev-parse`; the benchmark runs no git.
T._code_version = lambda: f"{__version__}+benchmark"

build_labels = T.build_labels
def timed_labels(*args, **kwargs):
    say("building churn labels ...")
    t0 = time.perf_counter()
    labels = build_labels(*args, **kwargs)
    out["labels"] = {"seconds": time.perf_counter() - t0, "rows": labels.height,
                     "as_of": labels["event_timestamp"].n_unique()}
    say(f"labels: {labels.height:,} rows in {out['labels']['seconds']:.1f} s")
    return labels
T.build_labels = timed_labels

split_dates = T.split_dates
def timed_split(dates):
    train, valid, purged = split_dates(dates)
    out["split"] = {"train": [f"{d:%Y-%m-%d}" for d in train],
                    "valid": [f"{d:%Y-%m-%d}" for d in valid], "purged": purged}
    return train, valid, purged
T.split_dates = timed_split

training_frame = T.training_frame
def timed_frame(service, labels, versions=None):
    state["service"] = service
    say(f"{service}: point-in-time training set of {labels.height:,} rows ...")
    t0 = time.perf_counter()
    frame = training_frame(service, labels, versions)
    seconds = time.perf_counter() - t0
    out["frames"][service] = {"seconds": seconds, "rows": frame.height, "columns": frame.width,
                              "digest_seconds": 0.0}
    say(f"{service}: {frame.height:,} x {frame.width} in {seconds:.1f} s")
    return frame
T.training_frame = timed_frame

digest = T.digest
def timed_digest(frame):
    t0 = time.perf_counter()
    value = digest(frame)
    if state["service"] in out["frames"]:
        out["frames"][state["service"]]["digest_seconds"] += time.perf_counter() - t0
    return value
T.digest = timed_digest

pipeline_fit = Pipeline.fit
def timed_fit(self, X, y=None, **params):
    state["depth"] += 1
    t0 = time.perf_counter()
    try:
        return pipeline_fit(self, X, y, **params)
    finally:
        state["depth"] -= 1
        if state["depth"] == 0:
            state["fit"] = time.perf_counter() - t0
Pipeline.fit = timed_fit

fit_and_log = T.fit_and_log
def timed_run(family, service, *args, **kwargs):
    say(f"{service} / {family}: fitting ...")
    state["fit"] = None
    t0 = time.perf_counter()
    run = fit_and_log(family, service, *args, **kwargs)
    seconds = time.perf_counter() - t0
    params = mlflow.get_run(run.run_id).data.params
    out["runs"].append({"family": family, "service": service, "seconds": seconds,
                        "fit_seconds": state["fit"], "run_id": run.run_id,
                        "n_train": int(params["n_train"]), "n_valid": int(params["n_valid"]),
                        **run.metrics})
    say(f"{service} / {family}: fit {state['fit']:.1f} s, run {seconds:.1f} s, "
        f"ROC AUC {run.metrics['roc_auc']:.3f}")
    return run
T.fit_and_log = timed_run

t0 = time.perf_counter()
experiment = T.train_all(scale=scale, seed=seed)
out["train_all_seconds"] = time.perf_counter() - t0
out["import_seconds"] = t0 - t_start
out["promoted"] = experiment.promoted
out["champion_version"] = experiment.champion_version
out["champion_run"] = experiment.champion_run
with open(result_path, "w") as f:
    json.dump(out, f)
"""


def report_lines(r: dict[str, Any], data: Path, child: Any) -> list[str]:
    labels, split = r["labels"], r["split"]
    lines = [
        f"Labels: {labels['rows']:,} rows (customer × as-of time) at {labels['as_of']} as-of "
        f"times, built in {labels['seconds']:.1f} s; training as-of "
        f"{split['train'][0]}..{split['train'][-1]} ({len(split['train'])}), validation "
        f"{', '.join(split['valid'])}"
        + (" (label windows reaching into validation purged)." if split["purged"] else "."),
        "",
        "| feature service | training set rows × columns | build s (`training_frame`, "
        "point-in-time join) | digests s |",
        "|---|---|---|---|",
    ]
    for service, f in r["frames"].items():
        lines.append(
            f"| `{service}` | {f['rows']:,} × {f['columns']} | {f['seconds']:.1f} | "
            f"{f['digest_seconds']:.1f} |"
        )
    lines += [
        "",
        "| feature service | family | n train | n valid | fit s | run s | validation ROC AUC "
        "| PR AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append(
            f"| `{run['service']}` | {run['family']} | {run['n_train']:,} | {run['n_valid']:,} | "
            f"{run['fit_seconds']:.1f} | {run['seconds']:.1f} | {run['roc_auc']:.3f} | "
            f"{run['pr_auc']:.3f} |"
        )
    best = max(r["runs"], key=lambda x: x["roc_auc"])
    verb = "promoted to" if r["promoted"] else "kept as"
    lines += [
        "",
        "fit s: `Pipeline.fit` alone (imputation, encoding, classifier); run s: the whole "
        "`fit_and_log` (fit, validation scoring, permutation importance on 3,000 rows, five "
        "plots, MLflow logging of the model).",
        f"Whole `train_all`: {r['train_all_seconds']:.1f} s (plus {r['import_seconds']:.1f} s of "
        f"imports); the child process took {child.wall:.1f} s wall, peak RSS "
        f"{child.peak_gib:.2f} GiB.",
        f"Best: {best['family']} on `{best['service']}` (ROC AUC {best['roc_auc']:.3f}); model "
        f"`churn` version {r['champion_version']} {verb} @champion. MLflow store: "
        f"`{data / 'mlflow'}`.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Default data directory: the mesh of benchmarks/features.py, "
        + str(default_data_dir("<scale>")),
    )
    parser.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--data-dir", type=Path, help="a mesh built by benchmarks/features.py")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the models")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not write docs/")
    args = parser.parse_args()
    load = os.getloadavg()
    data = (args.data_dir or default_data_dir(args.scale)).resolve()
    info = world(data)
    problems = []
    if info is None:
        problems.append("no world")
    elif info.get("scale") != args.scale:
        problems.append(f"a {info.get('scale')} world, not {args.scale}")
    if not (data / "feast" / "registry.db").exists():
        problems.append("no Feast registry")
    missing = feature_tables_missing(data)
    if missing:
        problems.append(f"{len(missing)} of {len(FEATURE_TABLES)} feature tables missing")
    if problems:
        raise SystemExit(
            f"no built {args.scale} mesh in {data} ({'; '.join(problems)}); build it with "
            f"`python benchmarks/features.py --scale {args.scale}"
            + (f" --data-dir {args.data_dir}`" if args.data_dir else "`")
            + " (or `MESH_DATA_DIR=... mesh build`)"
        )
    env = {**os.environ, "MESH_DATA_DIR": str(data)}
    work = data / "bench"
    result = work / "training-result.json"
    result.unlink(missing_ok=True)
    log(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; mesh in {data}")
    log("train_all: labels, 2 training sets, 3 families x 2 services (MLflow) ...")
    child = run_child(
        [sys.executable, "-c", CHILD, str(result), str(args.seed), args.scale],
        env, work / "logs" / "training.log", "training", quiet=False,
    )  # fmt: skip
    if not child.ok:
        raise SystemExit(f"training failed: {child.failure()}")
    r = json.loads(result.read_text())
    body = [
        f"Machine: {machine()}",
        f"Command: `python benchmarks/training.py --scale {args.scale}` (on the mesh built by "
        "`benchmarks/features.py`, seed of the models "
        f"{args.seed})",
        f"Load average at start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5, 15 min; "
        "the 2 cores were shared with other people's work)",
        f"Mesh: scale {args.scale}, world seed {info['seed']}, {info['start']} + {info['day']} "
        "days.",
        "",
        *report_lines(r, data, child),
    ]
    print("\n" + "\n".join(body))
    if not args.no_doc:
        write_section(f"training — {datetime.now(UTC):%Y-%m-%d}", body)


if __name__ == "__main__":
    main()
