"""Settings fields that carry their range and meaning: :func:`bounded_field` declares one,
:func:`check_bounded_fields` checks a dataclass's values against them.

Standard library only (no numpy): the settings classes built on it are imported by the
command line's parser, and ``ld-portrait --help`` must start without the numeric libraries.
numpy scalars are still accepted (they register with the :mod:`numbers` ABCs).
"""
from __future__ import annotations

import dataclasses
import numbers
import sys

__all__ = ["bounded_field", "check_bounded_fields", "is_bool"]


def bounded_field(default, low, high, doc):
    """A dataclass field that carries its allowed range and meaning in ``metadata``
    (``{"min", "max", "doc"}``): node widgets and ``--param`` / ``--gate`` help are built from it."""
    return dataclasses.field(default=default, metadata={"min": low, "max": high, "doc": doc})


def is_bool(value) -> bool:
    """``value`` is a Python or numpy bool (numpy is not imported for the check: a numpy bool
    can only exist once numpy is loaded)."""
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))


def check_bounded_fields(record) -> None:
    """Raise ``ValueError`` naming the first :func:`bounded_field` of the dataclass ``record``
    whose value is not a number of the field's kind within its range."""
    for spec in dataclasses.fields(record):
        if "min" not in spec.metadata:
            continue
        value, low, high = getattr(record, spec.name), spec.metadata["min"], spec.metadata["max"]
        whole = isinstance(spec.default, int) and not isinstance(spec.default, bool)
        kind_ok = isinstance(value, numbers.Integral) if whole else isinstance(value, numbers.Real)
        if is_bool(value) or not kind_ok or not low <= value <= high:
            what = "a whole number" if whole else "a number"
            raise ValueError(f"{spec.name} must be {what} in {low}..{high}, got {value!r}.")
