"""Tests of `lrnn.scan`, the engine, against the independent loops in `references`."""

import lrnn.scan as ENGINE


def monoid_for(case):
    """The lrnn.scan monoid a `references.Case` is about."""
    return getattr(ENGINE, case.monoid)()
