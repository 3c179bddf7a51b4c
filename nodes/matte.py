"""Matte nodes: foreground padding, connectivity refinement and the quality gate.

Refinement and gate come in two forms, as core's KSampler / KSampler (Advanced): a simple node
with one choice (strength, strictness) for artists, and an advanced node with every parameter
(the original ids, so saved workflows keep working). Thin adapters: each node converts ComfyUI
tensors to numpy, loops over the batch, calls the library in ``refine/`` and converts back.
Alpha sockets are named ``alpha`` and mean 1 = opaque portrait; an ``invert`` switch accepts
core's inverted MASK (LoadImage gives 1 - alpha). Library modules are imported inside the
methods so importing the pack stays light. Outputs and inputs added later go last (the
``uncertain`` output of the refine nodes and input of the gates), so saved links stay valid.
"""
from __future__ import annotations

import json
from dataclasses import fields

import numpy as np

from ._common import each_in_batch, image_list, image_tensor, mask_list, mask_tensor, match_batch
from ._schema import (Output, alpha, choice, comfy_node, from_field, image, invert, mask, node_mappings,
                      number, switch, whole_number)

CATEGORY = "LD-Portrait/matte"

# Refinement parameters shown by the advanced node, in widget order. The order is fixed (saved
# UI workflows store widget values by position: new fields go at the end; the parameter set was
# once replaced as a whole, so workflows saved before that need rebuilding); types, ranges,
# defaults and tooltips come from RefineParams' field metadata, so widgets cannot drift from
# the library. Sizes whose library default is None ("scale with the image") show 0 for
# "automatic".
_REFINE_WIDGET_ORDER = (
    "background_level", "see_through_level", "deep_fill_level", "flat_step", "reach", "solid_radius",
    "hole_min_area", "island_keep_fraction", "frame_fade_depth",
    "fix_interior", "fix_pinholes", "remove_debris", "fix_frame_fade", "soft_company_fraction",
)
_FINE_STEP = ("background_level", "island_keep_fraction")  # useful values below 0.01
_REFINE_WIDGET_MAX = 4096  # lengths in px; an alpha's side rarely exceeds it

STRENGTH_TOOLTIP = (
    "How hard to repair: 'standard' suits Layer Diffusion portraits; 'gentle' fills only "
    "near-opaque pixels deep inside the body and keeps more semi-transparency (more is left "
    "uncertain); 'strong' trusts the prior further and also fills dimmer ones. Every parameter "
    "is in Connectivity Refine Alpha, Advanced.")
STRICTNESS_TOOLTIP = (
    "How strict the gate is: 'standard' suits Layer Diffusion portrait datasets; 'lenient' lets "
    "more through (busts cut at the sides, more corrections); 'strict' keeps only clean, centred, "
    "soft-edged mattes of at least 512 px. Every threshold is in Matte Quality Gate, Advanced.")


def _refine_widgets() -> list:
    """The advanced refine node's parameter widgets, built from RefineParams' field metadata."""
    from ..base.fields import field_kind
    from ..refine.refine_params import AUTOMATIC_SIZES, RefineParams

    specs = {spec.name: spec for spec in fields(RefineParams)}
    widgets = []
    for name in _REFINE_WIDGET_ORDER:
        spec = specs[name]
        low, high, doc = spec.metadata["min"], spec.metadata["max"], spec.metadata["doc"]
        kind = field_kind(spec)[0]
        if kind == "bool":
            widgets.append(switch(name, spec.default, doc, optional=True))
            continue
        if name in AUTOMATIC_SIZES:
            doc += " In this widget 0 = automatic."
            if not name.endswith("_area"):
                high = min(high, _REFINE_WIDGET_MAX)
        default = spec.default if spec.default is not None else 0
        if kind == "int":
            widgets.append(whole_number(name, int(default), int(low), int(high), doc, step=1, optional=True))
        else:
            step = 0.5 if name in AUTOMATIC_SIZES else (0.001 if name in _FINE_STEP else 0.01)
            widgets.append(number(name, float(default), float(low), float(high), doc, step=step, optional=True))
    return widgets


def _refine_batch(alpha, image, invert: bool, params) -> tuple:
    """Refine every alpha of a batch with ``params`` (a RefineParams); the node outputs."""
    from ..refine.connectivity import refine_alpha
    from ..base.errormap import error_map

    alphas, images = match_batch(
        mask_list(alpha, invert=invert), None if image is None else image_list(image),
        names=("alpha", "image"))
    refined, changed, uncertain, maps, stats = [], [], [], [], []
    for index, matte in each_in_batch(list(enumerate(alphas))):
        result = refine_alpha(matte, params)
        # Without colour, a white silhouette over the map's grey background stands in.
        colour = images[index] if images is not None else np.ones(matte.shape + (3,), np.float32)
        refined.append(result.alpha)
        changed.append(result.changed)
        uncertain.append(result.uncertain)
        maps.append(error_map(colour, result.alpha, result.changed, uncertain=result.uncertain))
        stats.append(result.stats)
    return (mask_tensor(refined), mask_tensor(changed), image_tensor(maps), json.dumps(stats),
            mask_tensor(uncertain))


def _judge_batch(alpha, raw_alpha, changed, invert: bool, thresholds, uncertain=None) -> tuple:
    """Judge every alpha of a batch with ``thresholds`` (QualityThresholds); the node outputs."""
    from ..refine.quality import judge_quality, measure_quality

    alphas, raws, changes, unsure = match_batch(
        mask_list(alpha, invert=invert),
        None if raw_alpha is None else mask_list(raw_alpha, "raw_alpha", invert=invert),
        None if changed is None else mask_list(changed, "changed"),
        None if uncertain is None else mask_list(uncertain, "uncertain"),
        names=("alpha", "raw_alpha", "changed", "uncertain"))
    verdicts, lines = [], []
    for index, matte in each_in_batch(list(enumerate(alphas))):
        measures = measure_quality(matte, raw_alpha=None if raws is None else raws[index],
                                   changed=None if changes is None else changes[index],
                                   uncertain=None if unsure is None else unsure[index], thresholds=thresholds)
        verdict = judge_quality(measures, thresholds)
        verdicts.append(verdict.to_dict())
        if verdict.keep:
            lines.append(f"{index}: keep")
        else:
            details = "; ".join(verdict.messages)
            lines.append(f"{index}: reject: {', '.join(verdict.reasons)} ({details})")
    kept = sum(1 for verdict in verdicts if verdict["keep"])
    return (kept == len(verdicts), kept, "\n".join(lines), json.dumps(verdicts))


class _RefineNode:
    """What the simple and the advanced refine node share: category, function and outputs."""

    CATEGORY = CATEGORY
    FUNCTION = "refine"
    OUTPUTS = (
        Output("MASK", "alpha", "Refined alpha, 1 = opaque portrait (MASK [B,H,W])."),
        Output("MASK", "changed", "1 where refinement changed the alpha, else 0 (MASK [B,H,W]); plug it "
                                  "into the quality gate."),
        Output("IMAGE", "error_map", (
            "Error map: the portrait with the corrected pixels in red, in the style of the paper's "
            "figures, and the uncertain ones in cyan (IMAGE [B,H,W,3]). Without an image input a white "
            "silhouette stands in.")),
        Output("STRING", "stats", (
            "Refinement statistics as a JSON list, one object per image of the batch (pixel counts per "
            "repair kind, uncertain pixels and fraction, changed fraction, parameters used).")),
        Output("MASK", "uncertain", (
            "1 where refinement kept the alpha as decoded because it cannot tell a genuine soft region "
            "(veil, translucent hair) from an artifact, else 0 (MASK [B,H,W]); plug it into the quality "
            "gate, which rejects mattes with too much of it.")),
    )


class _GateNode:
    """What the simple and the advanced quality gate share: category, function and outputs."""

    CATEGORY = CATEGORY
    FUNCTION = "judge"
    OUTPUTS = (
        Output("BOOLEAN", "keep", "True when every image of the batch passes the gate (drive a switch or a "
                                  "save node)."),
        Output("INT", "kept_count", "How many images of the batch pass the gate."),
        Output("STRING", "reasons", "One line per image: its index and 'keep', or 'reject:' with the "
                                    "reason codes and readable messages."),
        Output("STRING", "verdict", "JSON list, one verdict per image: keep, reasons, messages, measures "
                                    "(all measured values) and thresholds."),
    )


_GATE_INPUTS = (
    mask("raw_alpha", (
        "Optional decoder alpha before refinement (1 = opaque). The soft-edge "
        "('nearly_binary') and translucency checks use it, since refinement hides both."), optional=True),
    mask("changed", (
        "Optional 'changed' output of the refine node; enables the 'too_many_corrections' check."),
         optional=True),
    invert(
        "Turn on when alpha and raw_alpha are core's inverted MASK (1 = transparent, as "
        "from Load Image); both are then used as 1 - mask. 'changed' and 'uncertain' are never "
        "inverted."),
)
# Added after every existing input, so saved workflows' input slots stay valid.
_GATE_UNCERTAIN_INPUT = mask("uncertain", (
    "Optional 'uncertain' output of the refine node; enables the 'uncertain_matte' check "
    "(too much of the portrait kept as decoded, unjudged)."), optional=True)


@comfy_node
class LDPPadForeground:
    DISPLAY_NAME = "Pad Foreground Colour (LD-Portrait)"
    DESCRIPTION = (
        "Fill the foreground colour where alpha is 0 with the smoothly spread colour of the "
        "nearby portrait (Layer Diffusion's padding, equal to massive iterative Gaussian "
        "filtering). Pixels with alpha 1 are left exactly as they are. Matting datasets store "
        "this padded colour so compositing with a slightly wrong alpha shows no dark fringes.")
    CATEGORY = CATEGORY
    FUNCTION = "pad"
    OUTPUTS = (Output("IMAGE", "padded", "Foreground colour with the transparent area filled (IMAGE [B,H,W,3])."),)

    @classmethod
    def inputs(cls):
        return [image("image", "Foreground colour (RGB; an RGBA image's alpha channel is ignored)."),
                alpha(), invert()]

    def pad(self, image, alpha, invert=False):
        from ..base.padding import pad_foreground

        images, alphas = match_batch(image_list(image), mask_list(alpha, invert=invert),
                                     names=("image", "alpha"))
        return (image_tensor([pad_foreground(rgb, matte)
                              for rgb, matte in each_in_batch(list(zip(images, alphas)))]),)


@comfy_node
class LDPRefineAlpha(_RefineNode):
    DISPLAY_NAME = "Refine Alpha (LD-Portrait)"
    DESCRIPTION = (
        "Repair a Layer Diffusion alpha with the portrait connectivity prior: semi-transparent "
        "speckle and blotches inside the body and transparent pinholes (eye highlights) become "
        "opaque, faint floating debris is removed and the fade at the frame is fixed, while hair "
        "strands, soft edges and large background holes are kept; what the prior cannot judge "
        "(a veil or a dimming blotch) is kept as decoded and marked uncertain. Pick a strength; "
        "every parameter is in Connectivity Refine Alpha, Advanced. Outputs the refined alpha, "
        "the changed pixels, an error map (corrections in red, uncertain in cyan), statistics "
        "and the uncertain pixels.")

    @classmethod
    def inputs(cls):
        from ..refine.refine_params import REFINE_PRESETS

        return [image("image", "The portrait's colour (backdrop of the error map)."), alpha(),
                choice("strength", REFINE_PRESETS, "standard", STRENGTH_TOOLTIP), invert()]

    def refine(self, image, alpha, strength="standard", invert=False):
        from ..refine.refine_params import preset_params

        return _refine_batch(alpha, image, invert, preset_params(strength))


@comfy_node
class LDPConnectivityRefine(_RefineNode):
    DISPLAY_NAME = "Connectivity Refine Alpha, Advanced (LD-Portrait)"
    DESCRIPTION = (
        "Connectivity refinement with every parameter exposed (the simple form is Refine Alpha). "
        "Semi-transparent speckle and blotches inside the body and transparent pinholes become "
        "opaque, floating debris is removed, the fade at the frame is fixed, while soft structure "
        "near background seen through hair (strands, soft edges) and large background holes are "
        "kept; what the prior cannot judge is kept as decoded and marked uncertain. Sizes at 0 "
        "scale with the image; hover a widget for its meaning. Outputs the refined alpha, the "
        "changed pixels, an error map (corrected pixels in red, uncertain in cyan), statistics "
        "and the uncertain pixels.")

    @classmethod
    def inputs(cls):
        return [alpha(),
                image("image", "Optional portrait colour, used only as the backdrop of the error map.",
                      optional=True),
                invert(), *_refine_widgets()]

    def refine(self, alpha, image=None, invert=False, **params):
        from ..refine.refine_params import AUTOMATIC_SIZES, RefineParams

        overrides = {}
        for name, value in params.items():
            if name in AUTOMATIC_SIZES and value == 0:
                value = None  # widget 0 = let the library scale it with the image
            overrides[name] = value
        return _refine_batch(alpha, image, invert, RefineParams.from_kwargs(**overrides))


@comfy_node
class LDPQualityGateSimple(_GateNode):
    DISPLAY_NAME = "Matte Quality Gate (LD-Portrait)"
    DESCRIPTION = (
        "Judge whether portrait mattes belong in a dataset, at a chosen strictness: rejects "
        "empty mattes, several people, subjects cut off at the top or sides, mattes that needed "
        "too many corrections, nearly binary alpha (a failed transparent decode), translucent "
        "objects, tiny or off-centre subjects, mattes with too much area refinement left "
        "uncertain. Every threshold is in Matte Quality Gate, Advanced. Outputs keep (True only "
        "when every image of the batch passes), the number kept, readable reasons and the full "
        "verdicts as JSON.")

    @classmethod
    def inputs(cls):
        from ..refine.quality import QUALITY_PRESETS

        return [alpha(), choice("strictness", QUALITY_PRESETS, "standard", STRICTNESS_TOOLTIP),
                *_GATE_INPUTS, _GATE_UNCERTAIN_INPUT]

    def judge(self, alpha, strictness="standard", raw_alpha=None, changed=None, invert=False, uncertain=None):
        from ..refine.quality import quality_preset

        return _judge_batch(alpha, raw_alpha, changed, invert, quality_preset(strictness), uncertain)


@comfy_node
class LDPQualityGate(_GateNode):
    DISPLAY_NAME = "Matte Quality Gate, Advanced (LD-Portrait)"
    DESCRIPTION = (
        "The quality gate with every threshold exposed (the simple form is Matte Quality Gate): "
        "rejects empty mattes, several people, subjects cut off at the top or sides, mattes "
        "that needed too many corrections, nearly binary alpha (a failed transparent decode), "
        "translucent objects, tiny or off-centre subjects, mattes with too much area refinement "
        "left uncertain. Outputs keep (True only when every image of the batch passes), the "
        "number kept, readable reasons and the full verdicts with all measured values as JSON. "
        "Hover a threshold for its meaning.")

    @classmethod
    def inputs(cls):
        from ..base.fields import field_kind
        from ..refine.quality import QualityThresholds

        thresholds = [from_field(QualityThresholds, spec.name, optional=True,
                                 step=1 if field_kind(spec)[0] == "int" else 0.001)
                      for spec in fields(QualityThresholds)]
        return [alpha(), *_GATE_INPUTS, *thresholds, _GATE_UNCERTAIN_INPUT]

    def judge(self, alpha, raw_alpha=None, changed=None, invert=False, uncertain=None, **thresholds):
        from ..refine.quality import QualityThresholds

        return _judge_batch(alpha, raw_alpha, changed, invert, QualityThresholds.from_kwargs(**thresholds),
                            uncertain)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    LDPPadForeground, LDPRefineAlpha, LDPConnectivityRefine, LDPQualityGateSimple, LDPQualityGate)
