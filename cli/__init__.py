"""The ``ld-portrait`` command line: one module per sub-command."""
from .app import main

__all__ = ["main"]
