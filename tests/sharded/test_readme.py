"""README's "Sequence parallelism" example runs on 8 forced CPU devices, and what it computes split
over the mesh equals the unsharded scan and model (runs under tests/test_sharded_suite.py)."""

import dataclasses
import re

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.models import CausalLM
from lrnn.scan import DiagonalMonoid, scan
from tests.test_readme import README


def test_readme_sequence_parallel_example_runs_and_equals_the_unsharded_results():
    section = README.split("## Sequence parallelism", 1)[1].split("\n## ", 1)[0]
    namespace = {}
    exec(re.findall(r"```python\n(.*?)```", section, re.S)[0], namespace)
    a, b, lm = namespace["a"], namespace["b"], namespace["lm"]
    chex.assert_shape(namespace["states"], (2, 1024, 8))
    chex.assert_shape(namespace["logits"], (2, 1024, 50))
    chex.assert_trees_all_close((namespace["states"], namespace["final"]), scan(DiagonalMonoid(), (a, b)),
                                rtol=1e-10, atol=1e-10)
    unsharded = CausalLM(dataclasses.replace(namespace["config"], sequence_axis=None), vocab_size=50,
                         rngs=nnx.Rngs(0))
    chex.assert_trees_all_close(nnx.state(unsharded, nnx.Param), nnx.state(lm, nnx.Param), rtol=0, atol=0)
    expected = nnx.jit(lambda lm, tokens: lm(tokens))(unsharded, jnp.ones((2, 1024), jnp.int32))
    chex.assert_trees_all_close(namespace["logits"], expected, rtol=1e-5, atol=1e-5)
