"""The paper's algorithm on numpy arrays (numpy, OpenCV, SciPy; no torch, no ComfyUI).

- :mod:`.connectivity`   -- ``refine_alpha``: connectivity-aware alpha refinement
- :mod:`.refine_params`  -- its parameters (range and help in field metadata) and presets
- :mod:`.quality`        -- ``assess_quality``: keep or reject a matte, with reasons
- :mod:`.quality_params` -- its thresholds and strictness presets

The image helpers these and the other packages share (input checks, trimaps, padding,
compositing, error maps) and the settings base live one layer down in :mod:`..base`. The
padding and error-map names stay importable from here (``from comfyui_ld_portrait.refine
import pad_foreground``), as they were before that move.
"""
from ..base.lazy import lazy_exports

#: Public name -> module that defines it, imported on first use (:mod:`..base.lazy`): importing
#: a light module of this package (the settings in ``refine_params``, ``quality_params``) does
#: not load numpy and OpenCV. Names from :mod:`..base` are given as relative module names.
_HOMES = {
    "FIX_KINDS": "connectivity", "RefineResult": "connectivity", "refine_alpha": "connectivity",
    "true_background": "connectivity",
    "REFINE_PRESETS": "refine_params", "RefineParams": "refine_params", "preset_params": "refine_params",
    "alpha_bar_error_view": "..base.errormap", "alpha_bar_view": "..base.errormap",
    "error_map": "..base.errormap", "error_panel": "..base.errormap",
    "inverse_alpha_view": "..base.errormap",
    "pad_foreground": "..base.padding",
    "QualityThresholds": "quality_params", "QualityVerdict": "quality", "assess_quality": "quality",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "FIX_KINDS", "RefineParams", "RefineResult", "REFINE_PRESETS", "preset_params", "refine_alpha",
    "true_background",
    "alpha_bar_error_view", "alpha_bar_view", "error_map", "error_panel", "inverse_alpha_view",
    "pad_foreground", "QualityThresholds", "QualityVerdict", "assess_quality",
]
