"""Benchmarks of iotvideo-signaling: corpus, contenders, robust timing, stdlib reference, report, check.

Run ``pytest benchmarks --benchmark-only`` for pytest-benchmark tables, ``python -m benchmarks.report``
for the README tables, and ``python -m benchmarks.report --check`` to check the performance budget
(it exits 1 when a target is missed). The tests under ``benchmarks/`` check that the contenders
agree and that the report runs; they assert no time and no ratio. The daemon is loaded by
``python benchmarks/load.py`` and attacked by ``python -m benchmarks.attack`` (loopback only).
"""
