"""A seeded, coherent marketplace world that feeds every domain's source systems."""

from lakehouse.simulation.generator import GenerationResult, WorldExistsError, generate
from lakehouse.simulation.scales import SCALES, Scale

__all__ = ["SCALES", "GenerationResult", "Scale", "WorldExistsError", "generate"]
