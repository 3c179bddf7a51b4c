"""Parameters of :func:`.connectivity.refine_alpha`: one dataclass whose fields carry their own
range and help, and a few named presets for artists.

Every field has ``metadata = {"min", "max", "doc"}`` (as :class:`.quality.QualityThresholds`),
so node widgets and CLI ``--param`` help are generated from the fields and cannot drift. Sizes
whose default is ``None`` scale with the image (fractions of the shorter side or the area);
their ``min``/``max`` bound an explicit value.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .validation import HALF_CODE, bounded_field

__all__ = ["RefineParams", "REFINE_PRESETS", "preset_params", "RAMP_DEPTH_FRACTION"]

#: Default ramp depth as a fraction of the shorter image side.
RAMP_DEPTH_FRACTION = 0.04

_LEVELS = ("background_level", "opaque_level", "gap_level", "faint_level", "debris_max_alpha", "keep_island_fraction",
           "speckle_level", "shelf_level", "shelf_rise", "fade_min_alpha")
_SIZES = ("band_width", "gap_rim", "reach_depth", "ramp_depth", "taper_width", "strand_width", "hole_min_area",
          "island_min_area", "frame_fade_depth")
_SWITCHES = ("fix_interior", "fix_pinholes", "remove_debris", "fix_frame_fade")


@dataclass(frozen=True)
class RefineParams:
    """Thresholds of :func:`refine_alpha`; each field's metadata holds its range and meaning.

    Sizes given as ``None`` scale with the image. Defaults were calibrated on the calibration
    halves of the benchmark families (``pipeline/synthetic_families``) and checked on the real
    images ``i2i_0_transparent.png`` and ``causal_cut.png`` that the tests also use.
    """

    background_level: float = bounded_field(
        2.0 / 255.0, 0.0, 1.0,
        "Alpha at or below which a pixel can be true background (connected to the border). "
        "Layer Diffusion's background is exactly 0 up to faint noise.")
    opaque_level: float = bounded_field(
        1.0 - HALF_CODE, 0.0, 1.0,
        "Alpha at or above which a pixel is opaque and blocks the background's reach.")
    gap_level: float = bounded_field(
        0.5, 0.0, 1.0,
        "Alpha below which a pixel is a see-through gap (between hair strands) the background "
        "can cross; must lie between background_level and opaque_level.")
    faint_level: float = bounded_field(
        0.3, 0.0, 1.0,
        "Pixels below this alpha that the background reaches through pixels below it count as "
        "see-through gaps however deep they lie (a soft valley between an arm and the head). "
        "At or below background_level disables this.")
    band_width: float | None = bounded_field(
        None, 0.0, 65536.0,
        "How deep (px from the true background) the genuine transition band (hair, soft edges) "
        "may reach; semi-transparency deeper than this is an error. Unset (None) = automatic (3% of "
        "the shorter side, at least 4).")
    gap_rim: float | None = bounded_field(
        None, 0.0, 65536.0,
        "How far (px) the band may extend beyond see-through gaps between strands, however deep "
        "they are: the opaque half of a soft edge. Unset (None) = automatic (0.6% of the shorter side).")
    reach_depth: float | None = bounded_field(
        None, 0.0, 65536.0,
        "How deep (px from the true background) see-through gaps are searched. Unset (None) = "
        "automatic (3.2% of the shorter side).")
    strand_width: int | None = bounded_field(
        None, 0, 4096,
        "Opaque structures narrower than this (px), such as hair strands and curls, do not wall "
        "off the see-through gaps behind them. Unset (None) = automatic (0.5% of the shorter side, at "
        "least 5).")
    hole_min_area: int | None = bounded_field(
        None, 0, 1 << 30,
        "Enclosed transparent regions at least this large (px) are real background holes (the gap "
        "between arm and torso); smaller ones are pinholes and get filled. Unset (None) = automatic "
        "(0.1% of the image).")
    debris_max_alpha: float = bounded_field(
        0.5, 0.0, 1.0,
        "Detached islands whose strongest alpha is below this are faint debris and are removed.")
    island_min_area: int | None = bounded_field(
        None, 0, 1 << 30,
        "Detached islands smaller than this (px) are background debris and are removed. "
        "Unset (None) = automatic (0.01% of the image).")
    keep_island_fraction: float = bounded_field(
        0.02, 0.0, 1.0,
        "Detached islands at least this fraction of the largest one are kept (a second person or "
        "a held object; the quality gate judges those).")
    speckle_level: float = bounded_field(
        0.8, 0.0, 1.0,
        "Inside the transition band, a pixel at or above this alpha that is darker than all its "
        "neighbours is speckle and is made opaque.")
    speckle_passes: int = bounded_field(
        3, 0, 64,
        "How many times the band speckle test repeats (each pass exposes the next pixel of a "
        "speckle chain). 0 disables it.")
    shelf_level: float = bounded_field(
        0.5, 0.0, 1.0,
        "Band pixels at or above this alpha can be a shelf: a blotch that dims the body where it "
        "meets the outline.")
    shelf_rise: float = bounded_field(
        0.3, 0.0, 1.0,
        "A band pixel is a shelf (and made opaque) when it rises above its darkest neighbour by "
        "less than this fraction of its remaining transparency (a genuine soft edge climbs "
        "steeply toward the body). 0 disables the shelf test.")
    ramp_levels: tuple = bounded_field(
        (0.5, 0.8, 0.95), 0.0, 1.0,
        "Increasing alpha levels in (0, 1]. A pixel below the last level is also genuine when the "
        "background reaches it through pixels below the level just above its own alpha (a "
        "steadily climbing soft edge, such as a wide hair fringe). Empty disables this.")
    ramp_depth: float | None = bounded_field(
        None, 0.0, 65536.0,
        "How deep (px from the true background) a steadily climbing soft edge is kept as "
        f"genuine. Unset (None) = automatic ({RAMP_DEPTH_FRACTION:.1%} of the shorter side).")
    taper_width: float | None = bounded_field(
        None, 0.0, 65536.0,
        "Where filled pixels meet the kept soft band, they rise to 1 over this many pixels "
        "instead of jumping (no stair step along the band's inner limit). 0 fills to 1 at once. "
        "Unset (None) = automatic (0.4% of the shorter side, at least 2).")
    frame_fade_depth: int | None = bounded_field(
        None, 0, 65536,
        "Rows/columns from the image border in which a fade of the body toward the frame is "
        "repaired. Unset (None) = automatic (2.5% of the side, at least 2); fix_frame_fade switches "
        "the repair off.")
    fade_min_alpha: float = bounded_field(
        0.5, 0.0, 1.0,
        "Only pixels at least this opaque are repaired as a frame fade; dimmer ones are a soft "
        "edge that runs along the border.")
    fix_interior: bool = bounded_field(
        True, False, True, "Make semi-transparent speckle and blotches inside the body opaque.")
    fix_pinholes: bool = bounded_field(
        True, False, True, "Fill small fully transparent holes inside the body (eye highlights).")
    remove_debris: bool = bounded_field(
        True, False, True, "Remove faint floating islands in the background.")
    fix_frame_fade: bool = bounded_field(
        True, False, True,
        "Repair the fade where the body leaves the frame (make it opaque up to the border).")

    @classmethod
    def from_kwargs(cls, **values) -> "RefineParams":
        """Build from keywords; unknown names raise ``ValueError`` listing the known ones with
        their ranges."""
        known = {spec.name: spec for spec in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            listing = ", ".join(f"{name} ({spec.metadata['min']}..{spec.metadata['max']})"
                                for name, spec in known.items())
            raise ValueError(f"unknown refinement parameter(s) {unknown}; known: {listing}.")
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, its range and its meaning when a value is bad."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            low, high, doc = spec.metadata["min"], spec.metadata["max"], spec.metadata["doc"]
            if spec.name in _SWITCHES:
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"{spec.name} must be True or False; got {value!r}. {doc}")
                continue
            if spec.name == "ramp_levels":
                levels = tuple(value)
                if (any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0 for v in levels)
                        or list(levels) != sorted(set(levels))):
                    raise ValueError(f"ramp_levels must be strictly increasing numbers in (0, 1]; got {value!r}.")
                continue
            if value is None and spec.name in _SIZES:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{spec.name} must be a number; got {value!r}. {doc}")
            if not (np.isfinite(value) and low <= value <= high):
                raise ValueError(f"{spec.name}={value!r} is outside its range [{low}, {high}]: {doc}")
            if spec.type in ("int", int, "int | None") and float(value) != int(value):
                raise ValueError(f"{spec.name} must be a whole number; got {value!r}.")
        if not self.background_level < self.gap_level < self.opaque_level:
            raise ValueError(
                "Need background_level < gap_level < opaque_level; got "
                f"{self.background_level}, {self.gap_level}, {self.opaque_level}."
            )

    def resolved(self, height: int, width: int) -> dict:
        """Concrete values for an image of ``height`` x ``width`` pixels (``None`` sizes scaled)."""
        short = min(height, width)
        area = height * width
        values = asdict(self)
        automatic = {
            "band_width": max(4.0, 0.03 * short),
            "gap_rim": max(2.0, 0.006 * short),
            "reach_depth": max(4.0, 0.032 * short),
            "ramp_depth": max(8.0, RAMP_DEPTH_FRACTION * short),
            "taper_width": max(2.0, 0.004 * short),
            "strand_width": max(5, int(round(0.005 * short)) | 1),
            "hole_min_area": max(16, int(round(0.001 * area))),
            "island_min_area": max(4, int(round(0.0001 * area))),
            "frame_fade_depth": max(2, int(round(0.025 * short))),
        }
        for name, value in automatic.items():
            if values[name] is None:
                values[name] = value
        for name in ("band_width", "gap_rim", "reach_depth", "ramp_depth", "taper_width"):
            values[name] = float(values[name])
        for name in ("strand_width", "hole_min_area", "island_min_area", "frame_fade_depth"):
            values[name] = int(values[name])
        values["ramp_levels"] = tuple(float(level) for level in self.ramp_levels)
        return values


#: Named settings for the simple node and the CLI: overrides of :class:`RefineParams`.
#: ``gentle`` keeps more semi-transparency (only clear errors are fixed); ``strong`` also
#: fills dimmer shelves and longer speckle chains.
REFINE_PRESETS = {
    "gentle": {"shelf_rise": 0.0, "speckle_passes": 1, "speckle_level": 0.9},
    "standard": {},
    "strong": {"shelf_rise": 0.45, "shelf_level": 0.4, "speckle_passes": 6, "speckle_level": 0.7,
               "debris_max_alpha": 0.7},
}


def preset_params(name: str, **overrides) -> RefineParams:
    """The :class:`RefineParams` of preset ``name`` (see :data:`REFINE_PRESETS`), with keyword
    overrides applied on top."""
    if name not in REFINE_PRESETS:
        raise ValueError(f"unknown refinement preset {name!r}; choose one of {sorted(REFINE_PRESETS)}.")
    return RefineParams.from_kwargs(**{**REFINE_PRESETS[name], **overrides})
