"""The raw tables each domain's source systems deliver, and how each can be dirtied."""

from __future__ import annotations

from lakehouse.simulation.dirty import TableSpec

SPECS = {
    s.name: s
    for s in (
        TableSpec(
            "ventas",
            "customers",
            "customer_id",
            kinds=("duplicate", "malformed_value"),
            malformed=("email", "email_no_at"),
        ),
        TableSpec(
            "ventas",
            "orders",
            "order_id",
            required=("customer_id", "amount"),
            amount="amount",
            foreign_keys=("customer_id",),
            malformed=("currency", "lower_padded"),
        ),
        TableSpec(
            "ventas",
            "order_lines",
            "line_id",
            required=("product_id", "quantity"),
            amount="amount",
            foreign_keys=("product_id",),
        ),
        TableSpec(
            "ventas",
            "refunds",
            "refund_id",
            required=("order_id",),
            amount="amount",
            foreign_keys=("order_id",),
        ),
        TableSpec("producto", "products", "product_id", kinds=()),
        TableSpec(
            "producto",
            "price_changes",
            "change_id",
            required=("price_usd",),
            amount="price_usd",
            foreign_keys=("product_id",),
        ),
        TableSpec(
            "producto", "reviews", "review_id", required=("rating",), foreign_keys=("product_id",)
        ),
        TableSpec(
            "logistica",
            "shipments",
            "shipment_id",
            required=("order_id", "status"),
            foreign_keys=("order_id",),
            malformed=("region", "lower_padded"),
        ),
        TableSpec(
            "logistica",
            "returns",
            "return_id",
            required=("shipment_id",),
            foreign_keys=("shipment_id",),
        ),
        TableSpec("logistica", "stock_levels", "product_id", kinds=()),
        TableSpec("marketing", "campaigns", "campaign_id", kinds=()),
        TableSpec(
            "marketing",
            "campaign_events",
            "event_id",
            required=("event_type",),
            foreign_keys=("campaign_id",),
            malformed=("event_type", "upper_bang"),
        ),
        TableSpec(
            "finanzas",
            "payments",
            "payment_id",
            required=("amount", "status"),
            amount="amount",
            foreign_keys=("order_id",),
            malformed=("currency", "lower_padded"),
        ),
        TableSpec(
            "finanzas",
            "chargebacks",
            "chargeback_id",
            required=("payment_id",),
            amount="amount",
            foreign_keys=("payment_id",),
        ),
    )
}
