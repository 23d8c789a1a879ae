"""Fuzzing the wire entry points: the C kernel against its Python twin, and the reply invariants.

* :mod:`fuzz.differential`: the comparison of the two backends on one input, shared with
  ``tests/test_wire_properties.py``.
* :mod:`fuzz.harnesses`: one function per entry point that checks one input (``HARNESSES``);
  :mod:`fuzz.peer` runs the Device harnesses' Python-backend side in a second process.
* :mod:`fuzz.corpus` and ``fuzz/wire.dict`` (read by :mod:`fuzz.dictionary`): the seed corpus,
  built from the tests' vectors and the original document's examples, and the protocol's tokens.
* :mod:`fuzz.mutate`: a plain mutator that needs no libFuzzer; ``python -m fuzz`` runs it, lists
  the harnesses, writes the corpus and replays saved inputs.
* :mod:`fuzz.sanitized`: proof that a sanitized run imported the sanitized build.
* ``fuzz/run`` (atheris and libFuzzer, clang's ASan/UBSan; :mod:`fuzz.atheris_target`) and
  ``fuzz/sanitize-gcc`` (gcc's ASan/UBSan, the wire tests and the plain mutator; CI runs it):
  the two ways to run them. docs/fuzzing.md tells how.
"""
