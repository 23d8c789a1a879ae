"""Benchmarks of iotvideo-signaling: corpus, contenders, robust timing, stdlib reference, report.

Run ``pytest benchmarks --benchmark-only`` for pytest-benchmark tables, ``python -m benchmarks.report``
for the README table. ``test_ratios.py`` asserts the speed ratios in the normal test suite.
"""
