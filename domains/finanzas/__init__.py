"""Finanzas (payments): payment, fraud and accounting data products."""
