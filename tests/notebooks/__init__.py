"""Tests of notebooks/: each runs top to bottom (its own asserts are the checks) and its .ipynb
pair matches its .py source."""
