"""Benchmarks: run with ``./run python -m bench.<name>``; never part of the test suite."""
