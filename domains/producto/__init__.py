"""Producto (catalog): product catalog, pricing and taxonomy data products."""
