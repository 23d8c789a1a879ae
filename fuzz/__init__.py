"""Fuzzing the wire entry points: the C kernel against its Python twin.

* :mod:`fuzz.differential`: the comparison of the two backends on one input, shared with
  ``tests/test_wire_properties.py``.
"""
