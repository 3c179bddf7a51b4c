"""Named overrides of a parameter dataclass (``--param reach=20``, ``--gate min_side=128``).

The names, ranges and help come from the dataclass fields themselves: a field's
``metadata`` may hold ``"min"``, ``"max"`` and ``"doc"`` (as :class:`..refine.quality.
QualityThresholds` and :class:`..refine.connectivity.RefineParams` do). A field without them
is still listed, with its type and default.
"""
from __future__ import annotations

import dataclasses
import textwrap

__all__ = ["FieldSpec", "field_specs", "describe_fields", "check_overrides"]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One overridable field: its name, range text, default text and help."""

    name: str
    minimum: object = None
    maximum: object = None
    default: object = None
    doc: str = ""
    type_name: str = ""

    @property
    def range_text(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum}..{self.maximum}"
        if self.minimum is not None:
            return f">= {self.minimum}"
        if self.maximum is not None:
            return f"<= {self.maximum}"
        return self.type_name or "value"

    @property
    def default_text(self) -> str:
        if self.default is None:
            return "auto"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, float):
            return f"{self.default:.4g}"
        return str(self.default)


def _type_name(field) -> str:
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return text.replace(" | None", " or auto").replace("NoneType", "auto")


def field_specs(cls) -> list[FieldSpec]:
    """:class:`FieldSpec` of every init field of the dataclass ``cls``, in declaration order."""
    specs = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        meta = field.metadata or {}
        default = field.default if field.default is not dataclasses.MISSING else None
        doc = str(meta.get("doc") or meta.get("help") or "")
        specs.append(FieldSpec(field.name, meta.get("min"), meta.get("max"), default,
                               " ".join(doc.split()), _type_name(field)))
    return specs


def describe_fields(cls, *, width: int = 78, docs: bool = True) -> str:
    """One entry per field: ``name  range, default D`` and, with ``docs``, its help wrapped
    below it (for ``--help`` epilogs and error messages)."""
    lines = []
    for spec in field_specs(cls):
        lines.append(f"  {spec.name}  ({spec.range_text}, default {spec.default_text})")
        if docs and spec.doc:
            lines.extend(textwrap.wrap(spec.doc, width=width, initial_indent="      ",
                                       subsequent_indent="      "))
    return "\n".join(lines)


def check_overrides(values, cls, what: str) -> dict:
    """Check ``values`` (name -> value) against the fields of ``cls``.

    Returns ``values`` as a dict when every name is a field and every number lies in its
    field's range.

    Raises
    ------
    ValueError
        An unknown name (the message lists the valid names with their ranges) or a value out
        of range (the message gives the range).
    """
    values = dict(values or {})
    specs = {spec.name: spec for spec in field_specs(cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        listing = describe_fields(cls, docs=False)
        raise ValueError(f"unknown {what} {', '.join(repr(n) for n in unknown)}; valid names "
                         f"(range, default):\n{listing}")
    for name, value in values.items():
        spec = specs[name]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric:
            continue
        too_low = spec.minimum is not None and value < spec.minimum
        too_high = spec.maximum is not None and value > spec.maximum
        if too_low or too_high:
            raise ValueError(f"{what} {name}={value} is out of range {spec.range_text}.")
    return values
