"""Ventas (sales): revenue and transaction data products."""
