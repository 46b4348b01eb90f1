"""Benchmark of the worker against a local news web (see bench/run.py)."""
