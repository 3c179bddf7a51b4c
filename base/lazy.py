"""Package namespaces that import their modules on first use (PEP 562).

A package ``__init__`` that re-exports names from its modules would load them all (numpy,
OpenCV) as soon as any light module of the package is imported, e.g. a settings class the
command line's parser reads; ``ld-portrait --help`` must start without them.
"""
from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: dict[str, str]):
    """``(__getattr__, __dir__)`` for the package named ``package`` whose public names live in
    the modules ``homes`` names (public name -> module name within the package, or a relative
    module name such as ``"..base.padding"`` for a name the package re-exports from below)."""

    def __getattr__(name):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = home if home.startswith(".") else f".{home}"
        return getattr(importlib.import_module(module, package), name)

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(homes))

    return __getattr__, __dir__
