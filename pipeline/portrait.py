"""One portrait: refine its alpha, pad its foreground, judge it, and describe it as a record.

Order of the steps: refine first, then pad with the *refined* alpha. Pixels that refinement
made opaque (pinholes at specular highlights, interior speckle) keep their decoded colour
instead of being overwritten by the padding blur, and pixels it cleared (debris) get the
smooth padded colour like the rest of the background.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ..dataset.version import tool_version
from ..refine.connectivity import refine_alpha
from ..base.padding import pad_foreground
from ..refine.quality import assess_quality
from .params import check_overrides

__all__ = ["RefineOptions", "ProcessedPortrait", "process_portrait", "sample_record",
           "save_policy"]


@dataclasses.dataclass(frozen=True)
class RefineOptions:
    """Options of :func:`refine_folder` (the CLI flags map one to one).

    Attributes
    ----------
    error_maps : bool
        Also write ``error_maps/<id>.png`` (the error-map panel of ``base.errormap``).
    keep_rejected : bool
        Write the images of gate-rejected samples under ``rejected/``. Without it only their
        meta file is written there (verdict and measures for statistics, and so a re-run does
        not redo them).
    alpha_bits : {8, 16}
        Bit depth of the stored alphas.
    store_raw_alpha : bool
        Keep the alpha before refinement in ``raw_alpha/`` for audit.
    limit : int or None
        Process at most this many new files in this run (complete ones are skipped and do not
        count); None processes all.
    refine_params : mapping
        Keyword overrides for ``refine_alpha`` (``reach=20`` ...).
    gate : mapping
        Keyword thresholds for ``assess_quality`` (``min_side=128`` ...).
    max_pixels, max_bytes : int or None
        Refuse input files declaring more pixels / larger than this, before decoding (None:
        ``LDP_MAX_IMAGE_PIXELS`` / ``LDP_MAX_IMAGE_BYTES`` or the defaults of
        :mod:`..dataset.imagefiles`).
    """

    error_maps: bool = False
    keep_rejected: bool = False
    alpha_bits: int = 8
    store_raw_alpha: bool = True
    limit: int | None = None
    refine_params: Mapping = dataclasses.field(default_factory=dict)
    gate: Mapping = dataclasses.field(default_factory=dict)
    max_pixels: int | None = None
    max_bytes: int | None = None

    def __post_init__(self):
        if self.alpha_bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {self.alpha_bits}.")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(
                self.limit, int) or self.limit < 0):
            raise ValueError(f"limit must be a whole number >= 0 or None, got {self.limit!r}.")
        for name in ("max_pixels", "max_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None, got {value!r}.")
        # Fail on a misspelt name before any file is touched, not on the first image.
        from ..refine.connectivity import RefineParams
        from ..refine.quality import QualityThresholds
        check_overrides(self.gate, QualityThresholds, "quality threshold")
        QualityThresholds.from_kwargs(**dict(self.gate))
        check_overrides(self.refine_params, RefineParams, "refinement parameter")
        RefineParams(**dict(self.refine_params)).validate()


@dataclasses.dataclass
class ProcessedPortrait:
    """Everything :func:`process_portrait` computed for one image.

    Attributes
    ----------
    fg : float32 [H, W, 3]     padded foreground colour
    raw_alpha : float32 [H, W] alpha as decoded
    alpha : float32 [H, W]     refined alpha
    changed : bool [H, W]      pixels refinement changed
    stats : dict               refinement statistics (``RefineResult.stats``)
    verdict : QualityVerdict   quality gate result
    error_map : float32 [H, W', 3] or None
    uncertain : bool [H, W]    pixels refinement kept unjudged (``RefineResult.uncertain``)
    """

    fg: np.ndarray
    raw_alpha: np.ndarray
    alpha: np.ndarray
    changed: np.ndarray
    stats: dict
    verdict: object
    error_map: np.ndarray | None = None
    uncertain: np.ndarray | None = None


def process_portrait(rgb, alpha, *, refine_params: Mapping | None = None,
                     gate: Mapping | None = None, error_map: bool = False) -> ProcessedPortrait:
    """Refine, pad and judge one portrait.

    Parameters
    ----------
    rgb : ndarray [H, W, 3], 0..1
        Decoded foreground colour.
    alpha : ndarray [H, W], 0..1
        Decoded alpha (1 = opaque).
    refine_params, gate : mapping, optional
        Keyword overrides for ``refine_alpha`` and ``assess_quality``.
    error_map : bool
        Also draw the error-map panel.

    Returns
    -------
    ProcessedPortrait
    """
    result = refine_alpha(alpha, **dict(refine_params or {}))
    fg = pad_foreground(rgb, result.alpha)
    verdict = assess_quality(result.alpha, raw_alpha=alpha, changed=result.changed,
                             uncertain=result.uncertain, **dict(gate or {}))
    panel = None
    if error_map:
        from ..base.errormap import error_panel
        panel = error_panel(rgb, alpha, result.alpha, result.changed, uncertain=result.uncertain)
    return ProcessedPortrait(fg=fg, raw_alpha=np.asarray(alpha, np.float32), alpha=result.alpha,
                             changed=result.changed, stats=result.stats, verdict=verdict,
                             error_map=panel, uncertain=result.uncertain)


def sample_record(sample_id: str, processed: ProcessedPortrait, *, source_file: str,
                  source_sha256: str, source_bytes: int, extra: Mapping | None = None):
    """The :class:`..dataset.SampleRecord` of one refined file, as ``ld-portrait refine``
    saves it through :func:`..dataset.save_record` (the path the save node uses too).

    Meta keys: ``source_file, source_sha256, source_bytes, tool, padding``, then the
    refinement statistics and the verdict, then ``extra`` (the demo's seed and attributes).
    """
    from ..dataset import SampleRecord

    return SampleRecord(
        sample_id, processed.fg, processed.alpha, accepted=bool(processed.verdict.keep),
        meta={"source_file": source_file, "source_sha256": source_sha256,
              "source_bytes": source_bytes,
              "tool": {"name": "ld-portrait", "version": tool_version(), "command": "refine"},
              "padding": {"method": "layerdiffuse_pyramid", "alpha": "refined"}},
        refinement=processed.stats, verdict=processed.verdict.to_dict(),
        raw_alpha=processed.raw_alpha, error_map=processed.error_map,
        trailing_meta=dict(extra or {}))


def save_policy(options: RefineOptions):
    """The :class:`..dataset.SavePolicy` of ``options``."""
    from ..dataset import SavePolicy

    return SavePolicy(keep_rejected=options.keep_rejected, alpha_bits=options.alpha_bits,
                      store_raw_alpha=options.store_raw_alpha)
