"""Scoregate's benchmarks: ``python -m perf run SUITE [--quick]``. See :mod:`perf.harness`."""
