"""Tests of `lrnn.scan`, the engine, against the independent loops in `references`."""

import importlib

# `import lrnn.scan` binds the `scan` function (lrnn/__init__.py re-exports it under the
# package's name), so the module is looked up explicitly.
ENGINE = importlib.import_module("lrnn.scan")


def monoid_for(case):
    """The lrnn.scan monoid a `references.Case` is about."""
    return getattr(ENGINE, case.monoid)()
