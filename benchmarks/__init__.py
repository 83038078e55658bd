"""Benchmark scripts (run from the repository root, e.g. ``python -m benchmarks.research_parity``).

A package so that tests and scripts can share code: ``from benchmarks import research_style``.
"""
