"""The self-serve data platform every domain of the mesh builds on."""

__version__ = "0.1.0"
