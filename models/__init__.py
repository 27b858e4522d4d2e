"""Models trained on the central feature store: churn labels, training and MLflow tracking."""
