"""The harness: benchmark specs, datasets, validation, selection, recipes and dispatch.

Light modules (``harness.specs``, ``harness.validation``, ``harness.datasets``) never import
torch; heavy libraries are imported inside the functions that need them.
"""
