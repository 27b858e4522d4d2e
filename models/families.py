"""The model families compared on each feature service, as scikit-learn pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

FAMILIES = ("logistic_regression", "random_forest", "hist_gradient_boosting")
PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 0.5, "max_iter": 2000},
    "random_forest": {"n_estimators": 200, "min_samples_leaf": 20, "max_features": "sqrt"},
    "hist_gradient_boosting": {
        "learning_rate": 0.05,
        "max_iter": 200,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
    },
}


def build(family: str, inputs: pd.DataFrame, seed: int = 0) -> Pipeline:
    """An untrained pipeline: numbers imputed (with a missing flag, since "no purchase yet" is
    information), scaled for the linear model; categories one-hot encoded; then the classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; use one of {', '.join(FAMILIES)}")
    numeric = [c for c in inputs.columns if inputs[c].dtype == "float64"]
    categorical = [c for c in inputs.columns if c not in numeric]
    impute = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    numbers = make_pipeline(impute, StandardScaler()) if family == "logistic_regression" else impute
    prepare = ColumnTransformer(
        [
            ("numeric", numbers, numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
        ]
    )
    params = PARAMS[family]
    if family == "logistic_regression":
        classifier: Any = LogisticRegression(random_state=seed, **params)
    elif family == "random_forest":
        classifier = RandomForestClassifier(random_state=seed, n_jobs=2, **params)
    else:
        classifier = HistGradientBoostingClassifier(random_state=seed, **params)
    return Pipeline([("prepare", prepare), ("classifier", classifier)])
