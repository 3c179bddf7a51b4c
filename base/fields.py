"""The settings layer: fields that carry their range and meaning, one rule for their kinds, and a
base class that checks every field when a settings object is made.

* :func:`bounded_field` declares a field with ``metadata = {"min", "max", "doc"}``; node widgets,
  ``--param`` / ``--gate`` help and CLI option types are built from it.
* :func:`field_kind` says what a field holds -- ``"int"``, ``"float"``, ``"bool"`` or
  ``"other"``, and whether ``None`` is allowed -- from its annotation alone (``int | None``
  is an optional whole number). The node widgets (INT / FLOAT / BOOLEAN), the CLI option types
  and the checks all ask it, so an ``int | None`` field cannot become a FLOAT widget.
* :func:`checked_value` checks one value against its field and returns it as a plain Python
  number (settings are written to JSON as they are).
* :class:`Settings`: a dataclass base whose ``__post_init__`` checks every bounded field (then
  :meth:`Settings.check_together` for rules between fields), so a bad settings object cannot
  exist: ``RefineParams(flat_step=1.5)`` raises ``ValueError`` naming the field, its range and
  its meaning.

Standard library only (no numpy): the settings classes built on it are imported by the command
line's parser, and ``ld-portrait --help`` must start without the numeric libraries. numpy
scalars are still accepted (they register with the :mod:`numbers` ABCs).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import sys

__all__ = ["bounded_field", "field_kind", "checked_value", "check_bounded_fields", "is_bool",
           "Settings", "settings_table"]

_KINDS = ("int", "float", "bool")


def bounded_field(default, low, high, doc):
    """A dataclass field that carries its allowed range and meaning in ``metadata``
    (``{"min", "max", "doc"}``): node widgets and ``--param`` / ``--gate`` help are built from it."""
    return dataclasses.field(default=default, metadata={"min": low, "max": high, "doc": doc})


def is_bool(value) -> bool:
    """``value`` is a Python or numpy bool (numpy is not imported for the check: a numpy bool
    can only exist once numpy is loaded)."""
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))


def field_kind(spec: dataclasses.Field) -> tuple[str, bool]:
    """``(kind, optional)`` of a dataclass field from its annotation: kind is ``"int"``,
    ``"float"``, ``"bool"`` or ``"other"``; optional is whether ``None`` is allowed.

    Annotations are read as text (``from __future__ import annotations`` keeps them so):
    ``int``, ``float | None``, ``Optional[int]`` and the types themselves are understood."""
    annotation = spec.type
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace(" ", "").strip("'\"")  # a quoted annotation under postponed evaluation
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional["):-1] + "|None"
    parts = text.split("|")
    optional = "None" in parts
    named = [part for part in parts if part != "None"]
    kind = named[0] if len(named) == 1 and named[0] in _KINDS else "other"
    return kind, optional


def checked_value(spec: dataclasses.Field, value, owner: str = ""):
    """``value`` checked against the bounded field ``spec`` and returned as a plain Python
    ``int``, ``float`` or ``bool`` (``None`` where the field is optional).

    Raises ``ValueError`` naming the field (after ``owner``, e.g. ``"quality threshold "``),
    what it must be, its range and its meaning."""
    kind, optional = field_kind(spec)
    low, high, doc = spec.metadata["min"], spec.metadata["max"], spec.metadata["doc"]
    name = f"{owner}{spec.name}"
    if value is None and optional:
        return None
    if kind == "bool":
        if not is_bool(value):
            raise ValueError(f"{name} must be True or False; got {value!r}. {doc}")
        return bool(value)
    whole = kind == "int"
    what = "a whole number" if whole else "a number"
    unset = " or None (automatic)" if optional else ""
    if is_bool(value) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or (whole and float(value) != int(value)):
        raise ValueError(f"{name} must be {what} in {low}..{high}{unset}; got {value!r}. {doc}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value!r} is outside its range [{low}, {high}]: {doc}")
    return int(value) if whole else float(value)


def check_bounded_fields(record, owner: str = "") -> None:
    """Check every :func:`bounded_field` of the dataclass ``record`` (:func:`checked_value`)
    and store the plain values (``object.__setattr__``: frozen dataclasses too)."""
    for spec in dataclasses.fields(record):
        if "min" in spec.metadata:
            object.__setattr__(record, spec.name, checked_value(spec, getattr(record, spec.name), owner))


class Settings:
    """Base of the settings dataclasses: every bounded field is checked when an object is made
    (and stored as a plain Python value), then :meth:`check_together`. Subclasses set
    :attr:`OWNER` to prefix the field name in messages."""

    OWNER = ""

    def __post_init__(self):
        check_bounded_fields(self, self.OWNER)
        self.check_together()

    def check_together(self) -> None:
        """Rules between fields, and fields without a range; raise ``ValueError``."""

    def validate(self):
        """Check again (an object is checked when it is made; this catches values set later
        with ``object.__setattr__``) and return the object."""
        self.__post_init__()
        return self


def settings_table(record_class) -> str:
    """A Markdown table of the bounded fields of the settings dataclass ``record_class``:
    name, kind, default (``automatic`` for an unset optional size), range and meaning, in
    field order. The docs show these tables (``tools/settings_tables.py`` writes them and a
    test keeps them equal), so the docs cannot drift from the fields."""
    rows = ["| field | kind | default | range | meaning |", "|---|---|---|---|---|"]
    for spec in dataclasses.fields(record_class):
        if "min" not in spec.metadata:
            continue
        kind, optional = field_kind(spec)
        default = "automatic" if spec.default is None else _plain(spec.default)
        low, high = spec.metadata["min"], spec.metadata["max"]
        span = "True / False" if kind == "bool" else f"{_plain(low)} .. {_plain(high)}"
        kind_text = {"int": "whole number", "float": "number", "bool": "switch"}.get(kind, kind)
        if optional:
            kind_text += " or unset"
        meaning = " ".join(str(spec.metadata["doc"]).split()).replace("|", "\\|")
        rows.append(f"| `{spec.name}` | {kind_text} | {default} | {span} | {meaning} |")
    return "\n".join(rows) + "\n"


def _plain(value) -> str:
    """A value as the docs show it: floats to six significant digits (2/255 is 0.00784314)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
