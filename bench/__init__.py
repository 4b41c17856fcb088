"""Benchmarks: scripts that print figures against targets (never timed tests)."""
