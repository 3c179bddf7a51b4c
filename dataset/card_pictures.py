"""The pictures of a dataset card: plain bar charts drawn with OpenCV (no plotting package).

:func:`bar_chart` draws labelled horizontal bars; :func:`histogram_chart` bins numbers first.
:func:`card_charts` makes the card's charts from the samples' meta: the attribute values, the
gate's reject reasons, the foreground fraction and the refinement's corrections.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["bar_chart", "histogram_chart", "card_charts"]

_WIDTH = 640
_ROW = 22
_LABEL = 200
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def bar_chart(title: str, labels, values) -> np.ndarray:
    """uint8 RGB picture: ``title`` above one horizontal bar per (label, value)."""
    labels = [str(label)[:28] for label in labels]
    values = [float(value) for value in values]
    height = 40 + _ROW * max(1, len(labels)) + 10
    picture = np.full((height, _WIDTH, 3), 255, np.uint8)
    cv2.putText(picture, title[:70], (10, 24), _FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    top = max(values, default=0.0) or 1.0
    span = _WIDTH - _LABEL - 70
    for row, (label, value) in enumerate(zip(labels, values)):
        y = 40 + row * _ROW
        cv2.putText(picture, label, (10, y + 15), _FONT, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        length = int(round(span * value / top))
        cv2.rectangle(picture, (_LABEL, y + 3), (_LABEL + max(length, 1), y + _ROW - 3),
                      (70, 110, 200), -1)
        text = f"{value:g}"
        cv2.putText(picture, text, (_LABEL + length + 6, y + 15), _FONT, 0.45, (40, 40, 40), 1,
                    cv2.LINE_AA)
    if not labels:
        cv2.putText(picture, "(nothing recorded)", (10, 55), _FONT, 0.45, (90, 90, 90), 1,
                    cv2.LINE_AA)
    return picture


def histogram_chart(title: str, numbers, bins: int = 10) -> np.ndarray:
    """:func:`bar_chart` of ``numbers`` in ``bins`` equal bins over their range."""
    numbers = np.asarray([n for n in numbers if n is not None], np.float64)
    if numbers.size == 0:
        return bar_chart(title, [], [])
    low, high = float(numbers.min()), float(numbers.max())
    if high <= low:
        return bar_chart(title, [f"{low:.3g}"], [numbers.size])
    counts, edges = np.histogram(numbers, bins=bins, range=(low, high))
    labels = [f"{edges[i]:.3g} - {edges[i + 1]:.3g}" for i in range(bins)]
    return bar_chart(title, labels, counts)


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def card_charts(root, stats) -> dict:
    """Picture name -> uint8 RGB chart, from ``stats`` (:func:`.stats.dataset_stats`) and the
    accepted samples' meta (for the per-sample numbers)."""
    from .reading import iter_meta

    foreground, changed = [], []
    for meta in iter_meta(Path(root)):
        verdict = meta.get("verdict") if isinstance(meta.get("verdict"), dict) else {}
        measures = verdict.get("measures") if isinstance(verdict.get("measures"), dict) else {}
        refinement = meta.get("refinement") if isinstance(meta.get("refinement"), dict) else {}
        foreground.append(_number(measures.get("foreground_fraction")))
        changed.append(_number(refinement.get("changed_fraction")))
    charts = {}
    rows = [(f"{key}: {value}", counts["accepted"]) for key, info in stats.attributes.items()
            for value, counts in list(info["values"].items())[:12]]
    charts["attributes.png"] = bar_chart("Attribute values (accepted samples)",
                                         [r[0] for r in rows], [r[1] for r in rows])
    reasons = sorted(stats.reject_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    charts["gate_reasons.png"] = bar_chart("Quality gate: reject reasons (rejected samples)",
                                           [r[0] for r in reasons], [r[1] for r in reasons])
    charts["foreground_fraction.png"] = histogram_chart(
        "Foreground fraction (opaque share of the image)", foreground)
    charts["refinement_changed.png"] = histogram_chart(
        "Refinement: changed fraction of the portrait", changed)
    return charts
