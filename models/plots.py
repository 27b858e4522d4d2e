"""Evaluation figures of a churn run, saved as PNG files for MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a server
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.set_title(title)
    return plt, fig, ax


def evaluation_plots(
    y_true: np.ndarray,
    probability: np.ndarray,
    importances: pd.Series,
    folder: Path,
    label: str,
) -> list[Path]:
    """ROC and PR curves, calibration, feature importances and confusion matrix as PNGs."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (
        ConfusionMatrixDisplay,
        auc,
        precision_recall_curve,
        roc_curve,
    )

    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    plt, fig, ax = _figure(f"ROC — {label}")
    fpr, tpr, _ = roc_curve(y_true, probability)
    ax.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    paths.append(_save(plt, fig, folder / "roc_curve.png"))

    plt, fig, ax = _figure(f"Precision-recall — {label}")
    precision, recall, _ = precision_recall_curve(y_true, probability)
    ax.plot(recall, precision)
    ax.axhline(float(np.mean(y_true)), linestyle="--", color="grey", label="churn rate")
    ax.set(xlabel="recall", ylabel="precision")
    ax.legend()
    paths.append(_save(plt, fig, folder / "pr_curve.png"))

    plt, fig, ax = _figure(f"Calibration — {label}")
    observed, predicted = calibration_curve(y_true, probability, n_bins=10, strategy="quantile")
    ax.plot(predicted, observed, marker="o")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate")
    paths.append(_save(plt, fig, folder / "calibration.png"))

    plt, fig, ax = _figure(f"Permutation importance — {label}")
    top = importances.sort_values().tail(20)
    ax.barh(top.index, top.values)
    ax.set(xlabel="drop in ROC AUC when shuffled")
    fig.set_size_inches(6.5, 0.3 * len(top) + 1.5)
    paths.append(_save(plt, fig, folder / "feature_importance.png"))

    plt, fig, ax = _figure(f"Confusion matrix at 0.5 — {label}")
    ConfusionMatrixDisplay.from_predictions(
        y_true, (probability > 0.5).astype(int), display_labels=["stays", "churns"], ax=ax,
        colorbar=False,
    )  # fmt: skip
    paths.append(_save(plt, fig, folder / "confusion_matrix.png"))
    return paths


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
