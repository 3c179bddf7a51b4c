"""Pure matte algorithms on numpy arrays (numpy, OpenCV, SciPy; no torch, no ComfyUI).

One algorithm per module:

- :mod:`.padding`      -- ``pad_foreground``: Layer Diffusion's colour padding under alpha = 0
- :mod:`.connectivity` -- ``refine_alpha``: connectivity-aware alpha refinement
- :mod:`.refine_params` -- its parameters (range and help in field metadata) and presets
- :mod:`.errormap`     -- the paper's alpha-bar / alpha-bar_h pictures and error panels
- :mod:`.quality`      -- ``assess_quality``: keep or reject a matte, with reasons
- :mod:`.composite`    -- compositing over folder or procedural backgrounds
- :mod:`.synthetic`    -- procedural portraits with ground truth and Layer Diffusion artifacts
- :mod:`.validation`   -- input checks shared by all of them
"""
from .connectivity import FIX_KINDS, RefineResult, refine_alpha, true_background
from .refine_params import REFINE_PRESETS, RefineParams, preset_params
from .errormap import alpha_bar_error_view, alpha_bar_view, error_map, error_panel, inverse_alpha_view
from .padding import pad_foreground
from .quality import QualityThresholds, QualityVerdict, assess_quality

__all__ = [
    "FIX_KINDS", "RefineParams", "RefineResult", "REFINE_PRESETS", "preset_params", "refine_alpha",
    "true_background",
    "alpha_bar_error_view", "alpha_bar_view", "error_map", "error_panel", "inverse_alpha_view",
    "pad_foreground", "QualityThresholds", "QualityVerdict", "assess_quality",
]
