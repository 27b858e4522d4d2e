"""Entities shared by every domain's feature views: the mesh-wide join keys."""

import os

from feast import Entity, ValueType

if not os.environ.get("MESH_DATA_DIR"):
    # Without it feature_store.yaml would point Feast at a literal "${MESH_DATA_DIR}" folder.
    raise RuntimeError(
        "MESH_DATA_DIR is not set, and feature_store.yaml takes the registry and online store "
        'paths from it; run `MESH_DATA_DIR="$PWD/../data" feast apply` from feature_repo/, '
        "or use lakehouse.features.apply() which sets it from the mesh settings"
    )

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A marketplace customer, keyed by customer_id across all domains",
    tags={"shared": "true"},
)

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.INT64,
    description="A catalogue product, keyed by product_id across all domains",
    tags={"shared": "true"},
)
