"""Experiments and benchmarks built on lrnn; `benchlib` holds the timing helpers they share."""
