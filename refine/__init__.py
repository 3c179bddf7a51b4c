"""Pure matte algorithms on numpy arrays (numpy, OpenCV, SciPy; no torch, no ComfyUI).

One algorithm per module:

- :mod:`.padding`      -- ``pad_foreground``: Layer Diffusion's colour padding under alpha = 0
- :mod:`.connectivity` -- ``refine_alpha``: connectivity-aware alpha refinement
- :mod:`.refine_params` -- its parameters (range and help in field metadata) and presets
- :mod:`.fields`       -- settings fields with a range and a meaning (standard library only)
- :mod:`.lazy`         -- package namespaces that import their modules on first use
- :mod:`.errormap`     -- the paper's alpha-bar / alpha-bar_h pictures and error panels
- :mod:`.quality`      -- ``assess_quality``: keep or reject a matte, with reasons
- :mod:`.quality_params` -- its thresholds and strictness presets
- :mod:`.composite`    -- compositing over folder or procedural backgrounds
- :mod:`.trimap`       -- trimaps from a matte (erode / dilate) for evaluation
- :mod:`.validation`   -- input checks shared by all of them
"""
from .lazy import lazy_exports

#: Public name -> module that defines it, imported on first use (:mod:`.lazy`): importing a
#: light module of this package (the settings in ``refine_params``, ``quality_params``,
#: ``fields``) does not load numpy and OpenCV.
_HOMES = {
    "FIX_KINDS": "connectivity", "RefineResult": "connectivity", "refine_alpha": "connectivity",
    "true_background": "connectivity",
    "REFINE_PRESETS": "refine_params", "RefineParams": "refine_params", "preset_params": "refine_params",
    "alpha_bar_error_view": "errormap", "alpha_bar_view": "errormap", "error_map": "errormap",
    "error_panel": "errormap", "inverse_alpha_view": "errormap",
    "pad_foreground": "padding",
    "QualityThresholds": "quality_params", "QualityVerdict": "quality", "assess_quality": "quality",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "FIX_KINDS", "RefineParams", "RefineResult", "REFINE_PRESETS", "preset_params", "refine_alpha",
    "true_background",
    "alpha_bar_error_view", "alpha_bar_view", "error_map", "error_panel", "inverse_alpha_view",
    "pad_foreground", "QualityThresholds", "QualityVerdict", "assess_quality",
]
