"""Finanzas (payments) features: payment failures, fraud risk and chargebacks per customer."""

from datetime import timedelta

from entities import customer
from feast import FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64

from domains.finanzas.features import features_path
from lakehouse.registry import load_registry

OWNER = load_registry()["finanzas"].owner

finanzas_customer_source = FileSource(
    name="finanzas_customer_source",
    path=str(features_path().resolve()),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Delta table built by domains.finanzas.features.build",
    owner=OWNER,
    tags={"domain": "finanzas"},
)

finanzas_customer_fv = FeatureView(
    name="finanzas_customer_fv",
    entities=[customer],
    ttl=timedelta(days=21),
    schema=[
        Field(name="customer_id", dtype=Int64, description="Customer the snapshot describes"),
        Field(
            name="payment_attempts_30d",
            dtype=Int64,
            description="Payment attempts (first tries and retries) in the 30 days before it",
        ),
        Field(
            name="payment_failures_30d",
            dtype=Int64,
            description="Failed payment attempts in the 30 days before the snapshot",
        ),
        Field(
            name="avg_fraud_score_30d",
            dtype=Float64,
            description="Mean fraud risk score (0-1) of payments in 30 days; null without payments",
        ),
        Field(
            name="max_fraud_score_30d",
            dtype=Float64,
            description="Highest fraud risk score (0-1) of payments in 30 days; null without any",
        ),
        Field(
            name="chargebacks_90d",
            dtype=Int64,
            description="Chargebacks against the customer's payments in the 90 days before it",
        ),
    ],
    source=finanzas_customer_source,
    online=True,
    description=(
        "Weekly snapshots of each customer's payment trouble and fraud risk; only payments and "
        "chargebacks already ingested count"
    ),
    owner=OWNER,
    tags={"domain": "finanzas", "pii": "false"},
)
