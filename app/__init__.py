"""The mesh's front doors: the ASGI app that mounts every domain API, and the dashboard."""
