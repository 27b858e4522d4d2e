"""Logistica (fulfillment): shipment, inventory and delivery data products."""
