"""The HTTP edge (FastAPI): routers per resource."""
