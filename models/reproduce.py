"""`mesh train --reproduce RUN_ID`: rebuild a run's training set from the Delta versions it
logged (time travel, so later days of data change nothing), check the digests, retrain, compare."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.churn import build_labels, configure_mlflow
from models.training import (
    LABEL_TABLES,
    digest,
    fit_and_log,
    service_spec,
    training_frame,
)


@dataclass
class ReproduceReport:
    """What matched between a logged run and its reproduction."""

    run_id: str
    new_run_id: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def lines(self) -> list[str]:
        """A human summary, one line per check and metric."""
        out = [f"reproducing run {self.run_id} as run {self.new_run_id or '-'}"]
        out += [f"  {'ok ' if good else 'FAIL'} {name}" for name, good in self.checks.items()]
        out += [f"  {k}: logged {a:.6f}, reproduced {b:.6f}" for k, (a, b) in self.metrics.items()]
        out.append("reproduced exactly" if self.ok else "NOT reproduced")
        return out


def _dates(text: str) -> list[datetime]:
    return [datetime.fromisoformat(d).replace(tzinfo=UTC) for d in text.split(",") if d]


def reproduce(run_id: str) -> ReproduceReport:
    """Rebuild the labels and training set of a run at its logged Delta versions, compare their
    digests with the logged ones, retrain the same family with the same seed, compare metrics."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure_mlflow()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(
            f"no MLflow run {run_id!r}; list runs in the MLflow UI (`mesh mlflow`)"
        ) from exc
    params, tags = run.data.params, run.data.tags
    if "training_set_digest" not in params:
        raise ValueError(f"run {run_id} logged no provenance (made by an older version); retrain")
    versions = {
        key.removeprefix("input_version."): int(value)
        for key, value in params.items()
        if key.startswith("input_version.")
    }
    report = ReproduceReport(run_id)
    train_dates, valid_dates = _dates(params["train_as_of"]), _dates(params["valid_as_of"])
    labels = build_labels(
        as_of=sorted(train_dates + valid_dates),
        versions={t: versions[t] for t in LABEL_TABLES},
    )
    report.checks["entity set digest"] = digest(labels) == params["entity_digest"]
    service = params["feature_service"]
    _, registry_digest, _ = service_spec(service)
    report.checks["feature service definition"] = registry_digest == params["registry_digest"]
    tables = {k: v for k, v in versions.items() if k not in LABEL_TABLES}
    frame = training_frame(service, labels, tables)
    report.checks["training set digest"] = digest(frame) == params["training_set_digest"]
    carried = {k: v for k, v in params.items() if not k.startswith(("model.", "n_", "features"))}
    new = fit_and_log(
        params["family"],
        service,
        frame,
        train_dates,
        valid_dates,
        int(params["seed"]),
        {**{k: v for k, v in carried.items() if k != "family"}, "reproduces": run_id},
        {**{k: v for k, v in tags.items() if not k.startswith("mlflow.")}, "reproduces": run_id},
    )
    report.new_run_id = new.run_id
    for name, logged in run.data.metrics.items():
        if name in new.metrics:
            again = new.metrics[name]
            report.metrics[name] = (logged, again)
            report.checks[f"metric {name}"] = math.isclose(
                logged, again, rel_tol=1e-9, abs_tol=1e-12
            )
    return report
