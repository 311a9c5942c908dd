"""Stubs generated from proto/kvtier/v1 when the package is built (setup.py)."""
