"""Parameters of :func:`.connectivity.refine_alpha`: one dataclass whose fields carry their own
range and help, and a few named presets for artists.

Every field has ``metadata = {"min", "max", "doc"}`` (as :class:`.quality.QualityThresholds`),
so node widgets and CLI ``--param`` help are generated from the fields and cannot drift. Sizes
whose default is ``None`` scale with the image (fractions of the shorter side or the area);
their ``min``/``max`` bound an explicit value.

These are all the tuned numbers of the refinement (at most 12 by design, each with its
reason); ``docs/refinement.md`` has the table and how each value was chosen.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..base.fields import Settings, bounded_field, field_kind

__all__ = ["RefineParams", "REFINE_PRESETS", "preset_params", "AUTOMATIC_SIZES", "REACH_FRACTION", "SOLID_RADIUS_FRACTION",
           "SOLID_RADIUS_FLOOR", "HOLE_MIN_FRACTION", "FRAME_FADE_FRACTION", "TUNED_NUMBERS"]

#: Default reach: how far (as a fraction of the shorter side) genuine soft structure may lie
#: from background seen through clearly transparent pixels. Chosen leaving one family out
#: from 2%, 3% and 4.5% (docs/refinement.md): the largest keeps the pockets of wide hair
#: masses; real hair's near-opaque soft pixels lie within 3-6% of such a gap (99th percentile
#: on the real ground-truth mattes).
REACH_FRACTION = 0.045
#: Default solid radius (fraction of the shorter side, at least 2 px): the scale of Layer
#: Diffusion's speckle (1-4 px clusters at 1024 px). An enclosed dip with no other enclosed dip
#: within twice this is a hole in a solid body (pockets of hair come in groups); dips smaller
#: than its square are speckle or pinholes; near-opaque plateaus farther than twice this from
#: see-through background are dimming, and flatness is measured over this radius.
SOLID_RADIUS_FRACTION = 0.004
#: The solid radius is at least this many pixels: the smallest neighbourhood with a ring around
#: its centre (5 x 5). The other automatic sizes' floors follow from it: the reach is at least
#: twice the solid radius, a true hole at least the square of that, a frame fade at least one
#: solid radius deep.
SOLID_RADIUS_FLOOR = 2.0
#: Enclosed transparent regions covering this fraction of the image are real holes (the gap
#: between an arm and the torso): the project's stated size for a true background hole.
HOLE_MIN_FRACTION = 0.001
#: Default frame-fade depth (fraction of the shorter side): Layer Diffusion fades the body out
#: over its last 1-2% of rows where it leaves the frame; 2.5% covers that with margin.
FRAME_FADE_FRACTION = 0.025



@dataclass(frozen=True)
class RefineParams(Settings):
    """Thresholds of :func:`refine_alpha`; each field's metadata holds its range and meaning,
    and a bad value raises ``ValueError`` when the object is made (:class:`.fields.Settings`).

    Sizes given as ``None`` scale with the image. Defaults were chosen leaving one data family
    out at a time (``benchmarks/bench_refine_quality.py``) and checked on real ground-truth
    mattes and real Layer Diffusion images; ``docs/refinement.md`` gives each value's reason.
    """

    background_level: float = bounded_field(
        2.0 / 255.0, 0.0, 0.5,
        "Alpha at or below which a pixel can be true background (connected to the border). "
        "Layer Diffusion's background is exactly 0 up to faint noise of 1-2 codes; the same "
        "noise below 1 counts as opaque (it walls dips in, and is filled away from the soft edge).")
    see_through_level: float = bounded_field(
        0.5, 0.01, 0.99,
        "Alpha below which the background clearly shows through a pixel: background reached "
        "through such pixels (the gaps between hair strands) is the evidence of genuine soft "
        "structure nearby. Also the least alpha a frame fade is repaired from.")
    deep_fill_level: float = bounded_field(
        0.8, 0.0, 1.0,
        "Beyond the reach of see-through background, pixels at least this opaque are an error "
        "and become opaque; dimmer ones are kept and marked uncertain (a veil or translucent "
        "hair volume cannot be told from a dimming blotch). 1 disables deep filling.")
    flat_step: float = bounded_field(
        0.05, 0.0, 1.0,
        "A near-opaque pixel (at least deep_fill_level) whose neighbourhood within solid_radius "
        "dips less than this below it lies on a plateau: Layer Diffusion's dimming and banding "
        "are flat, near-opaque hair drops steeply at strand edges. Plateaus farther than twice "
        "solid_radius from see-through background are filled, with the near-opaque pixels within "
        "solid_radius of them (their rims, where the step down fails this test). 0 disables this.")
    soft_company_fraction: float = bounded_field(
        0.1, 0.0, 1.0,
        "An enclosed dip (a non-opaque region the background cannot reach) whose surroundings "
        "within the reach hold less than this fraction of other soft pixels (true background not "
        "counted) is a hole in a solid body and becomes opaque at any level: hair brings soft "
        "company (other pockets, strand edges), Layer Diffusion's blotches and speckle sit in "
        "solid skin and cloth. 0 disables this.")
    reach: float | None = bounded_field(
        None, 0.0, 65536.0,
        "How far (px) genuine soft structure may lie from background seen through see-through "
        f"pixels. Unset (None) = automatic ({REACH_FRACTION:.1%} of the shorter side, at least twice "
        "solid_radius).")
    solid_radius: float | None = bounded_field(
        None, 0.0, 4096.0,
        "The scale of speckle (px): an enclosed dip with no other enclosed dip within twice this "
        "is a hole in a solid body and is filled when small or near-opaque; dips among others are "
        f"hair texture and are kept. Unset (None) = automatic ({SOLID_RADIUS_FRACTION:.1%} of the "
        f"shorter side, at least {SOLID_RADIUS_FLOOR:g}).")
    hole_min_area: int | None = bounded_field(
        None, 0, 1 << 30,
        "Enclosed transparent regions at least this large (px) are real background holes (the gap "
        "between arm and torso); smaller ones are pinholes. Unset (None) = automatic "
        f"({HOLE_MIN_FRACTION:.1%} of the image, at least (2 x solid_radius) squared).")
    island_keep_fraction: float = bounded_field(
        0.01, 0.0, 1.0,
        "Detached islands farther than twice solid_radius from the portrait are removed as "
        "debris unless they are at least this fraction of the portrait's area (a second person or a held "
        "object; the quality gate judges those).")
    frame_fade_depth: int | None = bounded_field(
        None, 0, 65536,
        "Rows/columns from the image border in which a fade of the body toward the frame is "
        f"repaired. Unset (None) = automatic ({FRAME_FADE_FRACTION:.1%} of the shorter side, at "
        "least solid_radius).")
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
        return cls(**values)  # checked when made (Settings)

    def check_together(self) -> None:
        """The one rule between fields (each field is checked on its own by :class:`Settings`)."""
        if not self.background_level < self.see_through_level:
            raise ValueError("Need background_level < see_through_level; got "
                             f"{self.background_level} and {self.see_through_level}.")

    def resolved(self, height: int, width: int) -> dict:
        """Concrete values for an image of ``height`` x ``width`` pixels (``None`` sizes scaled)."""
        short = min(height, width)
        values = asdict(self)
        solid = max(SOLID_RADIUS_FLOOR, SOLID_RADIUS_FRACTION * short) if values["solid_radius"] is None \
            else float(values["solid_radius"])
        automatic = {
            "reach": max(2.0 * solid, REACH_FRACTION * short),
            "solid_radius": solid,
            "hole_min_area": max(math.ceil((2.0 * solid) ** 2), int(round(HOLE_MIN_FRACTION * height * width))),
            "frame_fade_depth": max(math.ceil(solid), int(round(FRAME_FADE_FRACTION * short))),
        }
        for name, value in automatic.items():
            if values[name] is None:
                values[name] = value
        for name in ("reach", "solid_radius"):
            values[name] = float(values[name])
        for name in ("hole_min_area", "frame_fade_depth"):
            values[name] = int(values[name])
        return values


#: The sizes that scale with the image when unset (the optional fields: ``None`` = automatic,
#: :meth:`RefineParams.resolved`); the nodes show them as 0 = automatic.
AUTOMATIC_SIZES = tuple(spec.name for spec in fields(RefineParams) if field_kind(spec)[1])

#: Every tuned number of the refinement (at most 12 by design), with the reason for its value.
#: docs/refinement.md shows this table; the test suite checks it is complete.
TUNED_NUMBERS = {
    "background_level": "2/255: Layer Diffusion's background is exactly 0 up to one or two codes of decoder noise.",
    "see_through_level": "0.5: a pixel below it shows more background than body; the gaps between strands are "
                         "mostly below it, Layer Diffusion's interior speckle mostly above.",
    "deep_fill_level": "0.8: chosen leaving one family out from 0.7, 0.8, 0.9; 0.7 fills the pockets of wide hair "
                       "masses, 0.9 leaves most dimming.",
    "flat_step": "0.05 (13 codes): chosen leaving one family out from 0.03, 0.05, 0.08; real near-opaque hair drops "
                 "more than this within a few pixels, dimming and banding do not.",
    "REACH_FRACTION": "0.045 of the shorter side: chosen leaving one family out from 0.02, 0.03, 0.045; real hair's "
                      "near-opaque soft pixels lie within 3-6% of a see-through gap.",
    "SOLID_RADIUS_FRACTION": "0.004 of the shorter side: Layer Diffusion's speckle clusters are 1-4 px at 1024 px.",
    "SOLID_RADIUS_FLOOR": "2 px: the smallest neighbourhood with a ring around its centre; the other sizes' floors "
                          "follow from it.",
    "HOLE_MIN_FRACTION": "0.001 of the image: the project's stated size for a true background hole (the gap between an "
                         "arm and the torso); pinholes are far smaller.",
    "FRAME_FADE_FRACTION": "0.025 of the shorter side: Layer Diffusion fades the body over its last 1-2% of rows "
                           "where it leaves the frame; 2.5% covers that with margin.",
    "soft_company_fraction": "0.1: chosen leaving one family out from 0.03, 0.05, 0.1 (0.1 on every family); "
                             "genuine hair pockets have 0.2 and more of soft pixels around them (10th percentile "
                             "0.26), dips in skin and cloth a median of 0.03-0.08 (calibration halves).",
    "island_keep_fraction": "0.01 of the portrait's area: the yardstick's own limit for debris; a second person or "
                            "a held object is larger.",
    "max_uncertain_fraction": "0.1 of the portrait (quality gate): normal portraits measure 0 to 0.04 (genuine flat "
                              "translucent hair volumes up to 0.09), decodes with large translucent blotches 0.1 to "
                              "0.3 (refine/quality.py gives the figures).",
}

#: Named settings for the simple node and the CLI: overrides of :class:`RefineParams`.
#: ``gentle`` fills only nearly opaque, very flat plateaus and only dips with almost no soft
#: company, and keeps more soft structure; ``strong`` trusts the prior further (dimmer and less
#: flat plateaus filled).
REFINE_PRESETS = {
    "gentle": {"deep_fill_level": 0.9, "flat_step": 0.03, "soft_company_fraction": 0.03},
    "standard": {},
    "strong": {"deep_fill_level": 0.6, "flat_step": 0.08},
}


def preset_params(name: str, **overrides) -> RefineParams:
    """The :class:`RefineParams` of preset ``name`` (see :data:`REFINE_PRESETS`), with keyword
    overrides applied on top."""
    if name not in REFINE_PRESETS:
        raise ValueError(f"unknown refinement preset {name!r}; choose one of {sorted(REFINE_PRESETS)}.")
    return RefineParams.from_kwargs(**{**REFINE_PRESETS[name], **overrides})
