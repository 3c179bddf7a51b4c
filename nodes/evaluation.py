"""Evaluation nodes: trimaps (from an alpha, from a coarse mask) and the matting error measures
of one alpha against a reference.

Thin adapters over :mod:`..base.trimap` and :mod:`..evaluation`. A trimap travels as a MASK
holding 0 (background), 128/255 (unknown) and 1 (foreground), so saving it as an 8-bit image
gives the field's 0/128/255 codes; the IMAGE output is the same picture for previews and
image savers. Trimap By Erode / Dilate is the pack's one trimap-from-a-mask node: its
``unknown`` choice gives 0.5 instead (what pymatting-style solvers expect), which is what the
deprecated Trimap from Mask (:mod:`.matting`) made.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import check_interrupt, image_tensor, mask_list, mask_tensor, match_batch
from ._schema import ALPHA_TOOLTIP, Output, alpha, choice, comfy_node, invert, mask, node_mappings, number

CATEGORY = "LD-Portrait/evaluation"

_BAND_UNITS = ["pixels", "percent of shorter side"]
#: The ``unknown`` choice of Trimap By Erode / Dilate -> the unknown value :mod:`..base.trimap` takes.
UNKNOWN_CHOICES = {"128/255": 128, "0.5": 0.5}


class _TrimapNode:
    """What both trimap nodes share: category, function name, outputs and their conversion."""

    CATEGORY = CATEGORY
    FUNCTION = "make"
    OUTPUTS = (
        Output("MASK", "trimap", "Trimap as a MASK: 0 background, 128/255 unknown, 1 foreground (saved as "
                                 "8 bit: 0/128/255)."),
        Output("IMAGE", "trimap_image", "The same trimap as a gray IMAGE, for previews and image savers."),
    )

    @staticmethod
    def _outputs(trimaps: list[np.ndarray]) -> tuple:
        """Trimaps per image (uint8 codes 0/128/255 or float 0/0.5/1) -> (MASK, IMAGE) outputs."""
        masks = [as_mask_values(trimap) for trimap in trimaps]
        return (mask_tensor(masks), image_tensor([np.repeat(m[..., None], 3, axis=2) for m in masks]))


def as_mask_values(trimap: np.ndarray) -> np.ndarray:
    """A trimap as MASK values: uint8 codes 0/128/255 divided by 255, float 0/0.5/1 as they are."""
    if trimap.dtype == np.uint8:
        return trimap.astype(np.float32) / np.float32(255.0)
    return trimap.astype(np.float32, copy=False)


def erode_dilate_trimaps(mask, erode: float, dilate: float, invert: bool, unknown: str) -> list[np.ndarray]:
    """One trimap per MASK of the batch (:func:`..base.trimap.trimap_from_mask`), with the
    unknown value of the ``unknown`` choice (a key of :data:`UNKNOWN_CHOICES`)."""
    from ..base.trimap import trimap_from_mask

    if unknown not in UNKNOWN_CHOICES:
        raise ValueError(f"unknown must be one of {list(UNKNOWN_CHOICES)}, got {unknown!r}.")
    trimaps = []
    for frame in mask_list(mask, "mask", invert=invert):
        check_interrupt()
        trimaps.append(trimap_from_mask(frame, erode, dilate, unknown=UNKNOWN_CHOICES[unknown]))
    return trimaps


@comfy_node
class LDPTrimapFromAlpha(_TrimapNode):
    DISPLAY_NAME = "Trimap From Alpha (LD-Portrait)"
    DESCRIPTION = (
        "Make a trimap from an alpha matte: unknown where the alpha is neither 0 nor 1, widened "
        "by a band (pixels or percent of the shorter side) that also covers hard 0/1 edges. "
        "Use it to evaluate with the DIM protocol or to feed a trimap-based matting model.")

    @classmethod
    def inputs(cls):
        return [
            alpha(),
            number("band", 10.0, 0.0, 4096.0, (
                "How far the unknown region reaches beyond the semi-transparent pixels and hard "
                "edges; 0 keeps exactly the pixels with 0 < alpha < 1."), step=0.5),
            choice("band_unit", _BAND_UNITS, "pixels", (
                "Whether band is in pixels or in percent of the image's shorter side "
                "(resolution-independent).")),
            invert(optional=False),
        ]

    def make(self, alpha, band, band_unit, invert):
        from ..base.trimap import trimap_from_alpha

        if band_unit not in _BAND_UNITS:
            raise ValueError(f"band_unit must be one of {_BAND_UNITS}, got {band_unit!r}.")
        trimaps = []
        for frame in mask_list(alpha, "alpha", invert=invert):
            check_interrupt()
            if band_unit == "pixels":
                trimaps.append(trimap_from_alpha(frame, band))
            else:
                trimaps.append(trimap_from_alpha(frame, band_fraction=min(band, 100.0) / 100.0))
        return self._outputs(trimaps)


@comfy_node
class LDPTrimapErodeDilate(_TrimapNode):
    DISPLAY_NAME = "Trimap By Erode / Dilate (LD-Portrait)"
    DESCRIPTION = (
        "Make a trimap from a coarse mask such as a segmentation: the mask eroded is "
        "foreground, what the dilated mask does not reach is background, the ring between is "
        "unknown (128/255 for evaluation and 8-bit trimap files, or 0.5 for matting solvers). "
        "For a band around the edge, set erode and dilate to the same width.")
    OUTPUTS = (
        Output("MASK", "trimap", "Trimap as a MASK: 0 background, 1 foreground, unknown 128/255 (saved as 8 "
                                 "bit: 0/128/255) or 0.5, as the unknown input says."),
        _TrimapNode.OUTPUTS[1],
    )

    @classmethod
    def inputs(cls):
        return [
            mask("mask", "Coarse subject mask, 1 = subject (above 0.5 counts as inside)."),
            number("erode", 10.0, 0.0, 4096.0, "Radius in pixels the mask shrinks by to give sure "
                                                "foreground.", step=0.5),
            number("dilate", 10.0, 0.0, 4096.0, "Radius in pixels the mask grows by; beyond it is sure "
                                                 "background.", step=0.5),
            invert(optional=False),
            choice("unknown", UNKNOWN_CHOICES, "128/255", (
                "Value of the unknown ring. 128/255: the field's 0/128/255 codes when saved as 8 bit "
                "(DIM evaluation, trimap files). 0.5: the 0/0.5/1 trimaps of pymatting-style "
                "solvers. Trimap Matting and Matte Metrics read both."), optional=True),
        ]

    def make(self, mask, erode, dilate, invert, unknown="128/255"):
        return self._outputs(erode_dilate_trimaps(mask, erode, dilate, invert, unknown))


_METRIC_LABELS = (("sad", "SAD"), ("mse", "MSE"), ("mad", "MAD"), ("grad", "Grad"),
                  ("conn", "Conn"))


def _report(errors: list, protocol: str, with_trimap: bool) -> tuple[str, dict]:
    """A small text table (per image when a batch, then the mean) and the mean per measure."""
    region = ("unknown region of the trimap" if with_trimap else "whole image")
    if protocol == "whole":
        region = "whole image (P3M-500 / AM-2K definitions, Grad / 10)"
    lines = [f"protocol {protocol}: {region}; SAD, Grad, Conn / 1000"
             if protocol == "dim" else f"protocol {protocol}: {region}",
             "image " + " ".join(f"{label:>10}" for _, label in _METRIC_LABELS)]
    for index, item in enumerate(errors):
        values = item.as_dict()
        lines.append(f"{index:<5} " + " ".join(f"{values[key]:10.5g}" for key, _ in _METRIC_LABELS))
    means = {}
    for key, _ in _METRIC_LABELS:
        values = [item.as_dict()[key] for item in errors]
        finite = [value for value in values if math.isfinite(value)]
        means[key] = float(np.mean(finite)) if finite else math.nan
    if len(errors) > 1:
        lines.append("mean  " + " ".join(f"{means[key]:10.5g}" for key, _ in _METRIC_LABELS))
    return "\n".join(lines), means


@comfy_node
class LDPMatteMetrics:
    DISPLAY_NAME = "Matte Metrics (LD-Portrait)"
    DESCRIPTION = (
        "Measure an alpha matte against a reference with the matting field's errors: SAD, MSE, "
        "MAD, gradient and connectivity (Adobe DIM definitions, or the P3M-500 / AM-2K "
        "whole-image protocol). Shows a table and outputs the values (mean over a batch).")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    OUTPUT_NODE = True
    OUTPUTS = (
        Output("STRING", "report", "The table shown on the node: each measure per image, and their mean for "
                                   "a batch."),
        Output("FLOAT", "sad", "Sum of absolute differences over the region, / 1000."),
        Output("FLOAT", "mse", "Mean squared difference over the region (NaN when a trimap has no unknown "
                               "pixel)."),
        Output("FLOAT", "mad", "Mean absolute difference over the region (NaN when a trimap has no unknown "
                               "pixel)."),
        Output("FLOAT", "grad", "Gradient error (DIM: / 1000 after mat2gray; whole protocol: / 10)."),
        Output("FLOAT", "conn", "Connectivity error, / 1000."),
    )

    @classmethod
    def inputs(cls):
        return [
            alpha("The matte to measure. " + ALPHA_TOOLTIP),
            mask("reference", "Ground-truth matte, 1 = opaque portrait, same size (a batch of 1 is reused "
                              "for every alpha)."),
            choice("protocol", ("dim", "whole"), "dim", (
                "dim: Adobe Deep Image Matting MATLAB definitions, over the trimap's unknown region "
                "(or every pixel without a trimap). whole: P3M-500 / AM-2K whole-image definitions "
                "(no trimap).")),
            invert("Turn on when alpha and reference come from core nodes such as Load Image, whose "
                   "MASK is 1 - alpha; both are then used as 1 - mask.", optional=False),
            mask("trimap", "Trimap (0 background, 128/255 unknown, 1 foreground), e.g. from Trimap From "
                           "Alpha; dim measures only its unknown pixels.", optional=True),
        ]

    def measure(self, alpha, reference, protocol, invert, trimap=None):
        from ..evaluation import evaluate_pair

        if protocol == "whole" and trimap is not None:
            raise ValueError("the whole protocol measures every pixel; disconnect the trimap "
                             "or choose the dim protocol.")
        alphas = mask_list(alpha, "alpha", invert=invert)
        references = mask_list(reference, "reference", invert=invert)
        trimaps = mask_list(trimap, "trimap") if trimap is not None else None
        alphas, references, trimaps = match_batch(alphas, references, trimaps,
                                                  names=("alpha", "reference", "trimap"))
        errors = []
        for index, (pred, truth) in enumerate(zip(alphas, references)):
            check_interrupt()
            region = None if trimaps is None else np.clip(trimaps[index], 0.0, 1.0)
            errors.append(evaluate_pair(np.clip(pred, 0.0, 1.0), np.clip(truth, 0.0, 1.0),
                                        region, protocol=protocol))
        text, means = _report(errors, protocol, trimaps is not None)
        result = (text, *(means[key] for key, _ in _METRIC_LABELS))
        return {"ui": {"text": [text]}, "result": result}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    LDPTrimapFromAlpha, LDPTrimapErodeDilate, LDPMatteMetrics)
