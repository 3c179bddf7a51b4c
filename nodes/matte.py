"""Matte nodes: foreground padding, connectivity refinement and the quality gate.

Thin adapters: each node converts ComfyUI tensors to numpy, loops over the batch, calls the
library in ``refine/`` and converts back. Alpha sockets are named ``alpha`` and mean
1 = opaque portrait; an ``invert`` switch accepts core's inverted MASK (LoadImage gives
1 - alpha). Library modules are imported inside the methods so importing the pack stays light.
"""
from __future__ import annotations

import json
from dataclasses import fields

import numpy as np

from ._common import (
    ALPHA_TOOLTIP,
    INVERT_TOOLTIP,
    Progress,
    check_interrupt,
    image_list,
    image_tensor,
    mask_list,
    mask_tensor,
    match_batch,
)

CATEGORY = "LD-Portrait/matte"

# Refinement parameters exposed as widgets: (name, type, min, max, step, tooltip). Defaults come
# from refine_alpha's own RefineParams, so the widgets cannot drift from the library. Sizes
# whose library default is None ("scale with the image") use 0 in the widget for "automatic".
_REFINE_WIDGETS = (
    ("background_level", "FLOAT", 0.0, 1.0, 0.001,
     "Alpha at or below which a pixel can be true background (connected to the border)."),
    ("gap_level", "FLOAT", 0.0, 1.0, 0.01,
     "Alpha below which a pixel is a see-through gap (between hair strands) the background "
     "can cross; must lie between background_level and opaque_level."),
    ("opaque_level", "FLOAT", 0.0, 1.0, 0.001,
     "Alpha at or above which a pixel is opaque and blocks the background's reach."),
    ("band_width", "FLOAT", 0.0, 4096.0, 0.5,
     "How deep (px from the true background) the genuine transition band (hair, soft edges) "
     "may reach; semi-transparency deeper than this is an error. 0 = automatic (3% of the "
     "shorter side)."),
    ("gap_rim", "FLOAT", 0.0, 4096.0, 0.5,
     "How far (px) the band may extend beyond see-through gaps between strands, however deep "
     "they are: the opaque half of a soft edge. 0 = automatic (1% of the shorter side)."),
    ("reach_depth", "FLOAT", 0.0, 4096.0, 0.5,
     "How deep (px from the true background) see-through gaps are searched. 0 = automatic "
     "(4% of the shorter side)."),
    ("hole_min_area", "INT", 0, 1 << 26, 1,
     "Enclosed transparent regions at least this large (px) are real background holes (the gap "
     "between arm and torso); smaller ones are pinholes and get filled. 0 = automatic (0.1% of "
     "the image)."),
    ("island_min_area", "INT", 0, 1 << 26, 1,
     "Detached islands smaller than this (px) are background debris and are removed. "
     "0 = automatic (0.01% of the image)."),
    ("debris_max_alpha", "FLOAT", 0.0, 1.0, 0.01,
     "Detached islands whose strongest alpha is below this are faint debris and are removed."),
    ("keep_island_fraction", "FLOAT", 0.0, 1.0, 0.001,
     "Detached islands at least this fraction of the largest one are kept (a second person or "
     "a held object; the quality gate judges those)."),
    ("strand_width", "INT", 0, 1024, 1,
     "Opaque structures narrower than this (px), such as hair strands and curls, do not wall "
     "off the see-through gaps behind them. 0 = automatic (0.5% of the shorter side, at least 5)."),
    ("ramp_depth", "FLOAT", 0.0, 4096.0, 0.5,
     "How deep (px from the true background) a steadily climbing soft edge (wide hair fringe) "
     "is kept as genuine. 0 = automatic (6% of the shorter side)."),
    ("speckle_level", "FLOAT", 0.0, 1.0, 0.01,
     "Inside the transition band, a pixel at or above this alpha that is darker than all its "
     "neighbours is speckle and is made opaque."),
    ("speckle_passes", "INT", 0, 64, 1,
     "How many times the band speckle test repeats (each pass exposes the next pixel of a "
     "speckle chain). 0 disables it."),
    ("frame_fade_depth", "INT", 0, 4096, 1,
     "Rows/columns from the image border in which a fade of the body toward the frame is "
     "repaired. 0 = automatic (2.5% of the side); use fix_frame_fade to switch it off."),
    ("fade_min_alpha", "FLOAT", 0.0, 1.0, 0.01,
     "Only pixels at least this opaque are repaired as a frame fade; dimmer ones are a soft "
     "edge that runs along the border."),
    ("fix_interior", "BOOLEAN", None, None, None,
     "Make semi-transparent speckle and blotches inside the body opaque."),
    ("fix_pinholes", "BOOLEAN", None, None, None,
     "Fill small fully transparent holes inside the body (specular highlights in the eyes)."),
    ("remove_debris", "BOOLEAN", None, None, None,
     "Remove faint floating islands in the background."),
    ("fix_frame_fade", "BOOLEAN", None, None, None,
     "Repair the fade where the body leaves the frame (make it opaque up to the border)."),
)
_AUTOMATIC_SIZES = ("band_width", "gap_rim", "reach_depth", "strand_width", "ramp_depth", "hole_min_area", "island_min_area", "frame_fade_depth")


def _widget(kind: str, default, low, high, step, tooltip: str) -> tuple:
    options = {"default": default, "tooltip": tooltip}
    if kind != "BOOLEAN":
        options.update({"min": low, "max": high, "step": step})
    if kind == "FLOAT" and abs(round(default / step) * step - default) > 1e-9:
        # The frontend rounds FLOAT widgets to their step unless told not to; a library default
        # such as 2/255 must reach the library unchanged.
        options["round"] = False
    return (kind, options)


class LDPPadForeground:
    DESCRIPTION = (
        "Fill the foreground colour where alpha is 0 with the smoothly spread colour of the "
        "nearby portrait (Layer Diffusion's padding, equal to massive iterative Gaussian "
        "filtering). Pixels with alpha 1 are left exactly as they are. Matting datasets store "
        "this padded colour so compositing with a slightly wrong alpha shows no dark fringes.")
    CATEGORY = CATEGORY
    FUNCTION = "pad"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("padded",)
    OUTPUT_TOOLTIPS = ("Foreground colour with the transparent area filled (IMAGE [B,H,W,3]).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": (
                    "Foreground colour (RGB; an RGBA image's alpha channel is ignored).")}),
                "alpha": ("MASK", {"tooltip": ALPHA_TOOLTIP}),
            },
            "optional": {
                "invert": ("BOOLEAN", {"default": False, "tooltip": INVERT_TOOLTIP}),
            },
        }

    def pad(self, image, alpha, invert=False):
        from ..refine.padding import pad_foreground

        images, alphas = match_batch(image_list(image), mask_list(alpha, invert=invert),
                                     names=("image", "alpha"))
        progress = Progress(len(images))
        padded = []
        for rgb, matte in zip(images, alphas):
            check_interrupt()
            padded.append(pad_foreground(rgb, matte))
            progress.update()
        return (image_tensor(padded),)


class LDPConnectivityRefine:
    DESCRIPTION = (
        "Repair a Layer Diffusion alpha with the portrait connectivity prior: semi-transparent "
        "speckle inside the body and transparent pinholes (eye highlights) become opaque, faint "
        "floating debris is removed, the fade at the frame is fixed, while the genuine "
        "transition band along the outline (hair strands, soft edges) and large background "
        "holes are kept. Outputs the refined alpha, the changed pixels, an error-map picture "
        "(corrected pixels in red) and statistics.")
    CATEGORY = CATEGORY
    FUNCTION = "refine"
    RETURN_TYPES = ("MASK", "MASK", "IMAGE", "STRING")
    RETURN_NAMES = ("alpha", "changed", "error_map", "stats")
    OUTPUT_TOOLTIPS = (
        "Refined alpha, 1 = opaque portrait (MASK [B,H,W]).",
        "1 where refinement changed the alpha, else 0 (MASK [B,H,W]); plug it into the quality gate.",
        "Error map: the portrait with the corrected pixels in red, in the style of the paper's "
        "figures (IMAGE [B,H,W,3]). Without an image input a white silhouette stands in.",
        "Refinement statistics as a JSON list, one object per image of the batch (pixel counts "
        "per repair kind, changed fraction, parameters used).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        from ..refine.connectivity import RefineParams

        defaults = RefineParams()
        optional = {
            "image": ("IMAGE", {"tooltip": (
                "Optional portrait colour, used only as the backdrop of the error map.")}),
            "invert": ("BOOLEAN", {"default": False, "tooltip": INVERT_TOOLTIP}),
        }
        for name, kind, low, high, step, tooltip in _REFINE_WIDGETS:
            default = getattr(defaults, name)
            if default is None:
                default = 0 if kind == "INT" else 0.0
            optional[name] = _widget(kind, default, low, high, step, tooltip)
        return {"required": {"alpha": ("MASK", {"tooltip": ALPHA_TOOLTIP})}, "optional": optional}

    def refine(self, alpha, image=None, invert=False, **params):
        from ..refine.connectivity import refine_alpha
        from ..refine.errormap import error_map

        overrides = {}
        for name, value in params.items():
            if name in _AUTOMATIC_SIZES and value == 0:
                value = None  # widget 0 = let the library scale it with the image
            overrides[name] = value
        alphas, images = match_batch(
            mask_list(alpha, invert=invert), None if image is None else image_list(image),
            names=("alpha", "image"))
        progress = Progress(len(alphas))
        refined, changed, maps, stats = [], [], [], []
        for index, matte in enumerate(alphas):
            check_interrupt()
            result = refine_alpha(matte, **overrides)
            # Without colour, a white silhouette over the map's grey background stands in.
            colour = images[index] if images is not None else np.ones(matte.shape + (3,), np.float32)
            refined.append(result.alpha)
            changed.append(result.changed)
            maps.append(error_map(colour, result.alpha, result.changed))
            stats.append(result.stats)
            progress.update()
        return (mask_tensor(refined), mask_tensor(changed), image_tensor(maps), json.dumps(stats))


class LDPQualityGate:
    DESCRIPTION = (
        "Judge whether portrait mattes belong in a dataset: rejects empty mattes, several "
        "people, subjects cut off at the top or sides, mattes that needed too many corrections, "
        "nearly binary alpha (a failed transparent decode), translucent objects, tiny or "
        "off-centre subjects. Outputs keep (True only when every image of the batch passes), "
        "the number kept, readable reasons and the full verdicts with all measured values as "
        "JSON. Every threshold is a widget; hover it for its meaning.")
    CATEGORY = CATEGORY
    FUNCTION = "judge"
    RETURN_TYPES = ("BOOLEAN", "INT", "STRING", "STRING")
    RETURN_NAMES = ("keep", "kept_count", "reasons", "verdict")
    OUTPUT_TOOLTIPS = (
        "True when every image of the batch passes the gate (drive a switch or a save node).",
        "How many images of the batch pass the gate.",
        "One line per image: its index and 'keep', or 'reject:' with the reason codes and readable messages.",
        "JSON list, one verdict per image: keep, reasons, messages, measures (all measured "
        "values) and thresholds.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        from ..refine.quality import QualityThresholds

        optional = {
            "raw_alpha": ("MASK", {"tooltip": (
                "Optional decoder alpha before refinement (1 = opaque). The soft-edge "
                "('nearly_binary') and translucency checks use it, since refinement hides both.")}),
            "changed": ("MASK", {"tooltip": (
                "Optional 'changed' output of Connectivity Refine; enables the "
                "'too_many_corrections' check.")}),
            "invert": ("BOOLEAN", {"default": False, "tooltip": (
                "Turn on when alpha and raw_alpha are core's inverted MASK (1 = transparent, as "
                "from Load Image); both are then used as 1 - mask. 'changed' is never inverted.")}),
        }
        for spec in fields(QualityThresholds):
            kind = "INT" if spec.type in ("int", int) else "FLOAT"
            step = 1 if kind == "INT" else 0.001
            optional[spec.name] = _widget(kind, spec.default, spec.metadata["min"], spec.metadata["max"],
                                          step, spec.metadata["doc"])
        return {"required": {"alpha": ("MASK", {"tooltip": ALPHA_TOOLTIP})}, "optional": optional}

    def judge(self, alpha, raw_alpha=None, changed=None, invert=False, **thresholds):
        from ..refine.quality import assess_quality

        alphas, raws, changes = match_batch(
            mask_list(alpha, invert=invert),
            None if raw_alpha is None else mask_list(raw_alpha, "raw_alpha", invert=invert),
            None if changed is None else mask_list(changed, "changed"),
            names=("alpha", "raw_alpha", "changed"))
        verdicts, lines = [], []
        for index, matte in enumerate(alphas):
            check_interrupt()
            verdict = assess_quality(matte, raw_alpha=None if raws is None else raws[index],
                                     changed=None if changes is None else changes[index], **thresholds)
            verdicts.append(verdict.to_dict())
            if verdict.keep:
                lines.append(f"{index}: keep")
            else:
                details = "; ".join(verdict.messages)
                lines.append(f"{index}: reject: {', '.join(verdict.reasons)} ({details})")
        kept = sum(1 for verdict in verdicts if verdict["keep"])
        return (kept == len(verdicts), kept, "\n".join(lines), json.dumps(verdicts))


NODE_CLASS_MAPPINGS = {
    "LDPPadForeground": LDPPadForeground,
    "LDPConnectivityRefine": LDPConnectivityRefine,
    "LDPQualityGate": LDPQualityGate,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LDPPadForeground": "Pad Foreground Colour (LD-Portrait)",
    "LDPConnectivityRefine": "Connectivity Refine Alpha (LD-Portrait)",
    "LDPQualityGate": "Matte Quality Gate (LD-Portrait)",
}
