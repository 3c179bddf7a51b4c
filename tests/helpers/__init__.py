"""Helpers shared by several test modules and benchmarks (not tests; pytest does not collect
them). ``pyproject.toml`` puts ``tests/`` on the path, so they import as ``helpers.<module>``."""
