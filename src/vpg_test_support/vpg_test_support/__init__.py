"""Helpers for tests and benchmarks only; no node or tool of the workspace imports them."""
