"""The domains of the mesh, one folder each, discovered through their domain.yml."""
