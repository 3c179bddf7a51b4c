"""Quality verdict for a portrait matte: keep it for the dataset, or reject it with reasons.

A dataset curator generating thousands of Layer Diffusion portraits needs an automatic gate
that throws out the samples a human would throw out: an empty decode, two people, a head cut
off by the frame, a matte that refinement had to rewrite wholesale, a decode that came out
binary (no soft edge at all), a translucent object that is not a portrait (a glass bottle),
a subject far too small or far off-centre, a matte whose refinement left much of the portrait
*uncertain* (kept as decoded because the connectivity prior could not tell a veil or a
translucent hair volume from a dimming artifact). :func:`assess_quality` measures each of these,
compares the measures with thresholds (all keyword parameters with documented defaults, see
:class:`QualityThresholds`) and returns a :class:`QualityVerdict` that keeps the measured
values, so a curator can re-judge a dataset later with other thresholds without re-running
anything. It is :func:`measure_quality` (the measures, no decision) followed by
:func:`judge_quality` (measures + thresholds -> verdict); call the two separately to re-judge.

Which alpha is measured
-----------------------
``alpha`` is the matte that goes into the dataset (normally the refined one). Shape, area,
border and component measures use it. The decoder's own view of the object is in
``raw_alpha`` (before refinement); the soft-edge check ("nearly binary") and the translucency
check use ``raw_alpha`` when it is given, because refinement legitimately turns interior
semi-transparency opaque and would hide a translucent object. Without ``raw_alpha`` both use
``alpha``. The uncertain share is measured over the decoder's portrait pixels (``raw_alpha``
above :data:`PORTRAIT_FLOOR`), as ``refine_alpha``'s ``uncertain_fraction`` is measured over
the pixels that are not true background (the two differ only by near-zero specks).

Measures and reasons (machine codes)
------------------------------------
``foreground`` means ``alpha >= opaque_level``; ``support`` means ``alpha > translucency_margin``;
a *person-sized* component is an 8-connected foreground component with at least
``person_area_ratio`` of the largest component's area and at least ``min_person_fraction`` of
the image.

==========================  ==========================================================
code                        rejected when
==========================  ==========================================================
``low_resolution``          ``min(H, W) < min_side``
``empty_matte``             foreground fraction of the image ``< min_foreground_fraction``
                            (the other reasons are then not evaluated)
``no_background``           foreground fraction ``> max_foreground_fraction``
``too_small``               largest component ``< min_subject_fraction`` of the image
``multiple_people``         more than ``max_people`` person-sized components
``fragmented``              more than ``max_fragment_fraction`` of the foreground lies
                            outside person-sized components (debris, detached parts)
``cut_off_top``             foreground touches the top border over more than
                            ``max_top_contact`` of its length
``cut_off_left/right``      same for a side border with ``max_side_contact``
``not_touching_bottom``     bottom contact ``< min_bottom_contact`` (off by default)
``not_centered``            the subject's centroid is more than ``max_center_offset`` of
                            the width away from the vertical centre line
``too_many_corrections``    ``changed`` pixels ``> max_changed_fraction`` of the
                            foreground area (only when ``changed`` is given)
``nearly_binary``           semi-transparent pixels per contour pixel
                            ``< min_semi_per_contour``
``too_transparent``         semi-transparent share of the support ``> max_translucent_fraction``
``uncertain_matte``         ``uncertain`` pixels ``> max_uncertain_fraction`` of the portrait's
                            pixels (only when ``uncertain`` is given)
==========================  ==========================================================

The bottom border is not a "cut off" reason: busts and half-body portraits leave the frame
at the bottom by design.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..base.validation import as_alpha, as_mask, check_same_size
from .quality_params import DEFAULT_THRESHOLDS, QUALITY_PRESETS, QualityThresholds, quality_preset

__all__ = [
    "QualityThresholds",
    "QualityVerdict",
    "assess_quality",
    "measure_quality",
    "judge_quality",
    "REASON_CODES",
    "DEFAULT_THRESHOLDS",
    "QUALITY_PRESETS",
    "quality_preset",
    "PORTRAIT_FLOOR",
]

#: Every reason code :func:`assess_quality` can emit, in the order reasons are listed.
REASON_CODES = (
    "low_resolution",
    "empty_matte",
    "no_background",
    "too_small",
    "multiple_people",
    "fragmented",
    "cut_off_top",
    "cut_off_left",
    "cut_off_right",
    "not_touching_bottom",
    "not_centered",
    "too_many_corrections",
    "nearly_binary",
    "too_transparent",
    "uncertain_matte",
)

#: Alpha above which a decoder pixel belongs to the portrait for the uncertain share (3 codes
#: and up at 8 bits): Layer Diffusion's background is 0 up to noise of 1-2 codes, refinement's
#: default ``background_level``. Half a code above 2/255 so float and 8-bit mattes agree.
PORTRAIT_FLOOR = 2.5 / 255.0

# Half an 8-bit step: values closer than this to 0 or 1 count as exactly 0 or 1, so 8-bit
# mattes (the usual case) and float mattes with rounding noise are judged alike.
_BINARY_EPS = 0.5 / 255.0


@dataclass(frozen=True)
class QualityVerdict:
    """Result of :func:`assess_quality`.

    Attributes
    ----------
    keep : bool
        True when no reason to reject was found.
    reasons : list of str
        Machine codes from :data:`REASON_CODES`, in that order; empty when ``keep``.
    messages : list of str
        One readable sentence per reason (same order), with the measured value and threshold.
    measures : dict
        Every measured value (JSON-serialisable ints, floats, strings or None where a
        measure does not apply), so a dataset can be re-judged later without the images.
    thresholds : dict
        The thresholds used (name -> value).
    """

    keep: bool
    reasons: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    measures: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "keep": bool(self.keep),
            "reasons": list(self.reasons),
            "messages": list(self.messages),
            "measures": dict(self.measures),
            "thresholds": dict(self.thresholds),
        }

    def to_json(self, **dumps_kwargs) -> str:
        """The verdict as a JSON object string (keys of :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), **dumps_kwargs)


def _border_contact(alpha: np.ndarray, level: float, band: int) -> dict:
    """Fraction of each border's length where the outermost ``band`` pixels reach ``level``."""
    height, width = alpha.shape
    rows, cols = min(band, height), min(band, width)
    return {
        "top_contact": float((alpha[:rows].max(axis=0) >= level).mean()),
        "bottom_contact": float((alpha[height - rows:].max(axis=0) >= level).mean()),
        "left_contact": float((alpha[:, :cols].max(axis=1) >= level).mean()),
        "right_contact": float((alpha[:, width - cols:].max(axis=1) >= level).mean()),
    }


def _contour_length(foreground: np.ndarray) -> int:
    """Foreground pixels with a 4-neighbour in the background (image border excluded).

    The image border is padded as foreground: a body leaving the frame has no soft edge there
    and must not count as contour.
    """
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    eroded = cv2.erode(foreground.view(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return int(np.count_nonzero(foreground) - np.count_nonzero(eroded))


def _semi_count(alpha: np.ndarray) -> int:
    return int(np.count_nonzero((alpha > _BINARY_EPS) & (alpha < 1.0 - _BINARY_EPS)))


def _ratio(numerator, denominator):
    return float(numerator) / float(denominator) if denominator else None


def measure_quality(alpha, *, raw_alpha=None, changed=None, uncertain=None,
                    thresholds: QualityThresholds | None = None) -> dict:
    """Measure everything the quality gate judges (no decision is taken here).

    Parameters
    ----------
    alpha : ndarray [H, W]
        The matte to judge (normally refined), 1 = opaque; float in 0..1, uint8, uint16 or bool.
    raw_alpha : ndarray [H, W], optional
        The decoder's alpha before refinement, same size. Used for the soft-edge
        ("nearly_binary") and translucency checks; ``alpha`` is used when omitted.
    changed : ndarray [H, W] of bool, optional
        Pixels refinement changed (``refine_alpha(...).changed``); float masks count values
        above 0.5. Without it the ``too_many_corrections`` check is skipped.
    uncertain : ndarray [H, W] of bool, optional
        Pixels refinement kept as decoded because it could not judge them
        (``refine_alpha(...).uncertain``); float masks count values above 0.5. Without it the
        ``uncertain_matte`` check is skipped.
    thresholds : QualityThresholds, optional
        Only the measuring parameters are used: ``opaque_level``, ``person_area_ratio``,
        ``min_person_fraction``, ``border_band`` and ``translucency_margin``. Defaults when
        omitted.

    Returns
    -------
    dict
        JSON-serialisable measures (ints, floats, strings, None where a measure does not
        apply); :func:`judge_quality` turns them into a verdict.

    Raises
    ------
    ValueError
        Wrong shape, dtype, NaN/inf or mismatched sizes.
    """
    limits = QualityThresholds() if thresholds is None else thresholds
    alpha = as_alpha(alpha, "alpha")
    height, width = alpha.shape
    if raw_alpha is not None:
        raw_alpha = as_alpha(raw_alpha, "raw_alpha")
        check_same_size(raw_alpha, alpha, "raw_alpha", "alpha")
    changed_mask = None if changed is None else as_mask(changed, alpha.shape)
    uncertain_mask = None if uncertain is None else as_mask(uncertain, alpha.shape)
    decoder_alpha = alpha if raw_alpha is None else raw_alpha

    image_pixels = height * width
    foreground = alpha >= limits.opaque_level
    foreground_pixels = int(np.count_nonzero(foreground))

    measures: dict = {
        "height": int(height),
        "width": int(width),
        "foreground_fraction": foreground_pixels / image_pixels,
    }

    measures.update(_component_measures(foreground, foreground_pixels, limits))
    measures.update(_border_contact(alpha, limits.opaque_level, limits.border_band))
    measures["changed_fraction"] = (
        None if changed_mask is None else _ratio(np.count_nonzero(changed_mask), foreground_pixels))
    measures["soft_edge_source"] = "alpha" if raw_alpha is None else "raw_alpha"
    measures.update(_decoder_measures(decoder_alpha, limits))
    measures.update(_uncertain_measures(decoder_alpha, uncertain_mask))
    return measures


def _component_measures(foreground: np.ndarray, foreground_pixels: int,
                        limits: QualityThresholds) -> dict:
    """Connected components of the foreground: the subject, other people, fragments."""
    height, width = foreground.shape
    image_pixels = height * width
    if not foreground_pixels:
        return {"component_count": 0, "person_count": 0, "subject_fraction": 0.0,
                "fragment_fraction": None, "center_offset": None}
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        foreground.view(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    largest = int(np.argmax(areas))
    person_floor = max(limits.person_area_ratio * areas[largest],
                       limits.min_person_fraction * image_pixels)
    is_person = areas >= person_floor
    is_person[largest] = True  # the subject counts even when it is below the floor
    person_pixels = int(areas[is_person].sum())
    subject_x = float(centroids[1 + largest][0])
    return {
        "component_count": int(count - 1),
        "person_count": int(is_person.sum()),
        "subject_fraction": float(areas[largest]) / image_pixels,
        "fragment_fraction": (foreground_pixels - person_pixels) / foreground_pixels,
        # Pixel centres are at x + 0.5, so a centred subject measures exactly 0.
        "center_offset": abs((subject_x + 0.5) / width - 0.5),
    }


def _decoder_measures(decoder_alpha: np.ndarray, limits: QualityThresholds) -> dict:
    """The soft edge (semi-transparent pixels per contour pixel) and the translucency of the
    decoder's view of the object."""
    decoder_foreground = decoder_alpha >= limits.opaque_level
    contour = _contour_length(decoder_foreground)
    semi = _semi_count(decoder_alpha)
    margin = limits.translucency_margin
    support = decoder_alpha > margin
    support_pixels = int(np.count_nonzero(support))
    translucent_pixels = int(np.count_nonzero(support & (decoder_alpha < 1.0 - margin)))
    return {
        "contour_pixels": contour,
        "semi_pixels": semi,
        "semi_per_contour": _ratio(semi, contour),
        "support_fraction": support_pixels / decoder_alpha.size,
        "translucent_fraction": _ratio(translucent_pixels, support_pixels),
        "mean_support_alpha": (
            float(decoder_alpha[support].mean(dtype=np.float64)) if support_pixels else None),
    }


def _uncertain_measures(decoder_alpha: np.ndarray, uncertain_mask) -> dict:
    """Share of the portrait refinement could not judge (as refine_alpha's uncertain_fraction)."""
    if uncertain_mask is None:
        return {"uncertain_pixels": None, "uncertain_fraction": None}
    uncertain_pixels = int(np.count_nonzero(uncertain_mask))
    portrait_pixels = int(np.count_nonzero((decoder_alpha > PORTRAIT_FLOOR) | uncertain_mask))
    return {"uncertain_pixels": uncertain_pixels,
            "uncertain_fraction": _ratio(uncertain_pixels, portrait_pixels)}


def judge_quality(measures: dict, thresholds: QualityThresholds | None = None) -> QualityVerdict:
    """Compare measures from :func:`measure_quality` with thresholds: the keep/reject decision.

    A curator can re-judge stored measures with other decision thresholds without the images
    (the measuring parameters listed in :func:`measure_quality` must stay the same).

    Parameters
    ----------
    measures : dict
        As returned by :func:`measure_quality` (or stored in a verdict's ``measures``).
    thresholds : QualityThresholds, optional
        Defaults when omitted.

    Returns
    -------
    QualityVerdict
    """
    limits = QualityThresholds() if thresholds is None else thresholds
    height, width = measures["height"], measures["width"]
    found: dict[str, str] = {}

    def check(code: str, failed: bool, message: str) -> None:
        if failed:
            found[code] = message

    m = measures
    check("low_resolution", min(height, width) < limits.min_side,
          f"image is {width}x{height}; the shorter side is below {limits.min_side} px.")
    empty = m["foreground_fraction"] < limits.min_foreground_fraction
    check("empty_matte", empty,
          f"only {m['foreground_fraction']:.2%} of the image is foreground (alpha >= "
          f"{limits.opaque_level}); at least {limits.min_foreground_fraction:.2%} is needed.")
    if not empty:
        check("no_background", m["foreground_fraction"] > limits.max_foreground_fraction,
              f"{m['foreground_fraction']:.2%} of the image is foreground, more than "
              f"{limits.max_foreground_fraction:.2%}: there is hardly any background.")
        check("too_small", m["subject_fraction"] < limits.min_subject_fraction,
              f"the subject covers {m['subject_fraction']:.2%} of the image, less than "
              f"{limits.min_subject_fraction:.2%}.")
        check("multiple_people", m["person_count"] > limits.max_people,
              f"{m['person_count']} separate person-sized regions found; at most "
              f"{limits.max_people} allowed.")
        check("fragmented", m["fragment_fraction"] > limits.max_fragment_fraction,
              f"{m['fragment_fraction']:.2%} of the foreground lies in small detached pieces, "
              f"more than {limits.max_fragment_fraction:.2%}.")
        for side, limit in (("top", limits.max_top_contact), ("left", limits.max_side_contact),
                            ("right", limits.max_side_contact)):
            contact = m[f"{side}_contact"]
            check(f"cut_off_{side}", contact > limit,
                  f"the foreground touches {contact:.2%} of the {side} border, more than "
                  f"{limit:.2%}: the subject is cut off.")
        check("not_touching_bottom", m["bottom_contact"] < limits.min_bottom_contact,
              f"the foreground touches {m['bottom_contact']:.2%} of the bottom border, less "
              f"than {limits.min_bottom_contact:.2%}: not a bust or half-body portrait.")
        check("not_centered", m["center_offset"] > limits.max_center_offset,
              f"the subject's centre is {m['center_offset']:.2%} of the width off the middle, "
              f"more than {limits.max_center_offset:.2%}.")
        check("too_many_corrections",
              m["changed_fraction"] is not None and m["changed_fraction"] > limits.max_changed_fraction,
              f"refinement changed {m['changed_fraction'] or 0:.2%} of the foreground area, more "
              f"than {limits.max_changed_fraction:.2%}: the decoded alpha was mostly wrong.")
        check("nearly_binary",
              m["semi_per_contour"] is not None and m["semi_per_contour"] < limits.min_semi_per_contour,
              f"{m['soft_edge_source']} has {m['semi_per_contour'] or 0:.3g} semi-transparent "
              f"pixels per contour pixel, fewer than {limits.min_semi_per_contour}: no soft edge, "
              "probably a failed transparent decode.")
        check("too_transparent",
              m["translucent_fraction"] is not None
              and m["translucent_fraction"] > limits.max_translucent_fraction,
              f"{m['translucent_fraction'] or 0:.2%} of the object is semi-transparent, more than "
              f"{limits.max_translucent_fraction:.2%}: a translucent object, not a portrait.")
        # .get: measures stored before the uncertain outcome existed have no uncertain share
        # and are not judged on it.
        uncertain = m.get("uncertain_fraction")
        check("uncertain_matte", uncertain is not None and uncertain > limits.max_uncertain_fraction,
              f"refinement kept {uncertain or 0:.2%} of the portrait as decoded because it could not "
              f"tell a genuine soft region (veil, translucent hair) from an artifact, more than "
              f"{limits.max_uncertain_fraction:.2%}: the matte may keep uncorrected blotches.")

    reasons = [code for code in REASON_CODES if code in found]
    return QualityVerdict(
        keep=not reasons,
        reasons=reasons,
        messages=[found[code] for code in reasons],
        measures=dict(measures),
        thresholds=limits.to_dict(),
    )


def assess_quality(alpha, *, raw_alpha=None, changed=None, uncertain=None, **thresholds) -> QualityVerdict:
    """Decide whether a portrait matte belongs in a matting dataset: :func:`measure_quality`
    then :func:`judge_quality`.

    Parameters
    ----------
    alpha, raw_alpha, changed, uncertain
        The matte to judge, the decoder's alpha before refinement, the pixels refinement
        changed and those it could not judge, exactly as in :func:`measure_quality`.
    **thresholds
        Any field of :class:`QualityThresholds` (see there for meanings and defaults).

    Returns
    -------
    QualityVerdict
        ``keep``, reason codes with messages, all measures and the thresholds used.

    Raises
    ------
    ValueError
        Wrong shape, dtype, NaN/inf, mismatched sizes, or an unknown / out-of-range threshold.

    Notes
    -----
    An all-zero alpha gives ``empty_matte``; an all-one alpha gives ``no_background`` and cut-off
    reasons. Deterministic; one pass of connected components plus a few reductions, so a
    1024x1024 matte takes a few milliseconds.
    """
    limits = QualityThresholds.from_kwargs(**thresholds)
    measures = measure_quality(alpha, raw_alpha=raw_alpha, changed=changed, uncertain=uncertain,
                               thresholds=limits)
    return judge_quality(measures, limits)
