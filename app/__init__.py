"""Sandlot's HTTP service (FastAPI). The only package that knows HTTP."""
