"""Runnable entry points: ``python -m pipelines.curate``."""
