"""Test-wide configuration.

float64 is switched on before any test builds an array: the engine is checked in float64
against float64 references, so a mismatch is a bug and not rounding. Tests that are about
lower precision (tests/scan/test_dtypes.py) ask for their dtypes explicitly.
"""

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# Each hypothesis example compiles small JAX programs: no deadline, a modest example count.
settings.register_profile("lrnn", deadline=None, max_examples=10, derandomize=True)
settings.load_profile("lrnn")
