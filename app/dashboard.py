"""Streamlit page of the mesh: each domain's contract with its consumers and its Delta tables."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app.overview import dependency_dot, mesh_metrics, slo_summary, table_overview
from lakehouse.registry import Registry, RegistryError, load_registry


@st.cache_data(ttl=30)
def cached_registry() -> Registry:
    """The domain registry, reloaded at most every 30 seconds."""
    return load_registry()


@st.cache_data(ttl=30)
def cached_tables() -> pl.DataFrame:
    """Every Delta table of the lakehouse with version, rows and last commit."""
    return table_overview()


st.set_page_config(page_title="Mesh lakehouse", layout="wide")
st.title("Mesh lakehouse")
st.markdown(
    "A data mesh on one laptop: each domain owns its Delta tables and publishes gold data "
    "products that other domains read, under the SLOs it promises."
)

try:
    registry = cached_registry()
except RegistryError as exc:
    st.error(f"The domain registry cannot be loaded: {exc}")
    st.stop()

tables = cached_tables()
metrics = mesh_metrics(registry, tables)
for column, (label, value) in zip(st.columns(len(metrics)), metrics.items(), strict=True):
    column.metric(label.capitalize(), f"{value:,}")

if tables.is_empty():
    st.info("No data yet: run `mesh build` to generate every domain's Delta tables, then reload.")

graph_column, rows_column = st.columns(2)
with graph_column:
    st.subheader("Who reads whose data products")
    st.graphviz_chart(dependency_dot(registry))
with rows_column:
    st.subheader("Rows per domain and layer")
    if not tables.is_empty():
        layered = tables.group_by("domain", "layer").agg(pl.col("rows").sum())
        st.bar_chart(layered, x="domain", y="rows", color="layer", stack=True)

for domain in registry:
    st.header(domain.name)
    st.markdown(f"**Owner:** {domain.owner}  \n**Mission:** {domain.mission}")
    slos = slo_summary(domain)
    for column, (label, value) in zip(st.columns(len(slos)), slos.items(), strict=True):
        column.metric(label, value)
    depends = ", ".join(f"`{dep}`" for dep in domain.dependencies) or "none"
    products = ", ".join(f"`{p.name}`" for p in domain.data_products)
    st.markdown(f"**Data products:** {products}  \n**Depends on:** {depends}")
    domain_tables = tables.filter(pl.col("domain") == domain.name).drop("domain")
    if domain_tables.is_empty():
        st.caption("No Delta tables yet.")
    else:
        st.dataframe(domain_tables, hide_index=True)
