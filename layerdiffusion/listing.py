"""Short name lists for error messages about weight files (torch-free, so ``download`` may use it)."""
from __future__ import annotations

from typing import Iterable, Sequence, Tuple

__all__ = ["abbreviate", "counted_lists"]


def abbreviate(items: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` names, comma separated, then ``... and N more`` for the rest."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def counted_lists(groups: Iterable[Tuple[str, Sequence[str]]], template: str = "{count} {label} ({names})",
                  limit: int = 3) -> list:
    """One phrase per non-empty ``(label, names)`` group, in order, from ``template``
    (fields ``count``, ``label`` and ``names``, the latter :func:`abbreviate`-d)."""
    return [template.format(count=len(names), label=label, names=abbreviate(names, limit))
            for label, names in groups if names]
