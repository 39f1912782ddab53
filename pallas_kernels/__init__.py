"""Pallas GPU/TPU kernels for lrnn's hot paths, each beside the pure-JAX reference it is
tested against. A kernel registers itself with the engine as a method
(`lrnn.scan.register_method("pallas", ...)`), so `scan(..., method="pallas")` reaches it
without callers changing. Depends only on JAX and on the monoids in `lrnn.scan`.

No kernel is registered yet: until one is, `method="pallas"` fails with a message saying so.
"""
