"""Thresholds of the quality gate (:func:`.quality.assess_quality`): one dataclass whose fields
carry their range and help, the defaults as a dict, and the strictness presets of the simple
gate node.

Standard library only: the command line's parser reads these, and ``ld-portrait --help`` must
start without numpy or OpenCV. :mod:`.quality` re-exports every name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..base.fields import Settings, bounded_field

__all__ = ["QualityThresholds", "DEFAULT_THRESHOLDS", "QUALITY_PRESETS", "quality_preset"]


@dataclass(frozen=True)
class QualityThresholds(Settings):
    """Thresholds of :func:`.quality.assess_quality`; every field is a keyword of that function.

    Fractions are in 0..1. Defaults were chosen on real Layer Diffusion outputs: a curly-haired
    portrait (kept), a hand-cut portrait with a nearly binary but anti-aliased edge (kept) and
    a glass bottle (rejected as translucent); see :mod:`.quality`'s docstring for each reason.
    """

    OWNER = "quality threshold "  # messages name the field as a threshold

    opaque_level: float = bounded_field(
        0.5, 0.01, 0.99,
        "Alpha at or above which a pixel counts as foreground for area, component, border and "
        "centre measures.")
    min_side: int = bounded_field(
        256, 0, 16384,
        "Reject ('low_resolution') when the shorter image side has fewer pixels; 0 disables.")
    min_foreground_fraction: float = bounded_field(
        0.005, 0.0, 1.0,
        "Reject as 'empty_matte' when less than this fraction of the image is foreground.")
    max_foreground_fraction: float = bounded_field(
        0.95, 0.0, 1.0,
        "Reject as 'no_background' when more than this fraction of the image is foreground "
        "(a failed decode that made everything opaque).")
    min_subject_fraction: float = bounded_field(
        0.05, 0.0, 1.0,
        "Reject as 'too_small' when the largest foreground component covers less than this "
        "fraction of the image.")
    person_area_ratio: float = bounded_field(
        0.2, 0.0, 1.0,
        "A foreground component counts as a person when its area is at least this fraction of "
        "the largest component's area (and at least min_person_fraction of the image).")
    min_person_fraction: float = bounded_field(
        0.01, 0.0, 1.0,
        "Smallest image fraction a component needs to count as a person.")
    max_people: int = bounded_field(
        1, 1, 100,
        "Reject as 'multiple_people' when there are more person-sized components than this.")
    max_fragment_fraction: float = bounded_field(
        0.05, 0.0, 1.0,
        "Reject as 'fragmented' when more than this fraction of the foreground area lies "
        "outside person-sized components (floating debris, detached limbs or props).")
    border_band: int = bounded_field(
        2, 1, 64,
        "Border contact is measured on the outermost this-many rows/columns (the largest alpha "
        "across the band), so a one-pixel fade at the frame does not hide a cut.")
    max_top_contact: float = bounded_field(
        0.03, 0.0, 1.0,
        "Reject as 'cut_off_top' when foreground touches more than this fraction of the top "
        "border (the head leaves the frame).")
    max_side_contact: float = bounded_field(
        0.3, 0.0, 1.0,
        "Reject as 'cut_off_left'/'cut_off_right' when foreground touches more than this "
        "fraction of a side border. Shoulders of a bust touch the sides near the bottom, "
        "which stays well below the default.")
    min_bottom_contact: float = bounded_field(
        0.0, 0.0, 1.0,
        "Reject as 'not_touching_bottom' when foreground touches less than this fraction of "
        "the bottom border. 0 disables; about 0.1 suits bust / half-body datasets, where a "
        "subject floating above the bottom edge is usually not a portrait.")
    max_center_offset: float = bounded_field(
        0.3, 0.0, 0.5,
        "Reject as 'not_centered' when the subject's centroid lies farther than this fraction "
        "of the image width from the vertical centre line; 0.5 disables.")
    max_changed_fraction: float = bounded_field(
        0.4, 0.0, 1e6,
        "Reject as 'too_many_corrections' when refinement changed more pixels than this "
        "fraction of the foreground area (the decoder's alpha was mostly wrong). Typical "
        "Layer Diffusion portraits with interior speckle need 0.1 to 0.3.")
    min_semi_per_contour: float = bounded_field(
        0.5, 0.0, 1e6,
        "Reject as 'nearly_binary' when the matte has fewer semi-transparent pixels than this "
        "per pixel of foreground contour: no soft edge at all, which suggests a failed "
        "transparent decode. An anti-aliased hand cut-out has about 1 to 2, a Layer Diffusion "
        "portrait with hair 5 to 30; 0 disables.")
    translucency_margin: float = bounded_field(
        0.05, 0.0, 0.49,
        "For the translucency measure, alpha in (margin, 1 - margin) is semi-transparent and "
        "alpha > margin is the object's support; the margin ignores faint background noise "
        "and near-opaque dither.")
    max_translucent_fraction: float = bounded_field(
        0.5, 0.0, 1.0,
        "Reject as 'too_transparent' when more than this fraction of the object's support is "
        "semi-transparent (glass, smoke, veils: not a portrait matte). Portraits with hair "
        "measure about 0.05 to 0.2, a glass bottle about 0.9.")
    # Last field: the advanced gate node shows the thresholds in this order (saved workflows
    # store widget values by position).
    max_uncertain_fraction: float = bounded_field(
        # 0.1, from refine_alpha's uncertain_fraction with standard refinement (the
        # uncertain outcome's design). Largest share on normal portraits: 0.0006 on the real Layer
        # Diffusion portrait i2i_0_transparent (0 on causal_cut), 0 on the demo, fourier_fur and
        # metaball_strands truths, 0.037 on eight undamaged real hair mattes, 0.008 on
        # sheer_motion's veils and 0.090 on pocket_hair's genuine flat translucent hair volumes:
        # 0.1 passes them all, the real mattes with a margin of about 3. Real mattes damaged with
        # translucent patches measure up to 0.23 (medians 0.08-0.10 and 0.04-0.09 for the
        # 'blotchy' and 'all' damage), pocket_hair and sheer_motion as decoded up to 0.25: a
        # tenth of the portrait left unjudged is where a curator stops trusting it.
        0.1, 0.0, 1.0,
        "Reject as 'uncertain_matte' when more than this fraction of the portrait's pixels was "
        "kept as decoded because refinement could not tell a genuine soft region (a veil, "
        "translucent hair) from an artifact (a dimming blotch). Portraits measure 0 to about 0.04 "
        "(flat translucent hair volumes up to 0.09); decodes left with large translucent "
        "blotches 0.1 to 0.3. 1 disables.")

    @classmethod
    def from_kwargs(cls, **thresholds) -> "QualityThresholds":
        """Build from keywords; unknown names raise ``ValueError`` listing the known ones."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(thresholds) - known)
        if unknown:
            raise ValueError(
                f"unknown quality threshold(s) {unknown}; known thresholds: {sorted(known)}.")
        return cls(**thresholds)

    def to_dict(self) -> dict:
        return asdict(self)


#: Default thresholds as a plain dict (name -> value).
DEFAULT_THRESHOLDS = QualityThresholds().to_dict()

#: Strictness choices of the simple gate node: overrides of :class:`QualityThresholds`.
QUALITY_PRESETS = {
    "lenient": {"max_top_contact": 0.06, "max_side_contact": 0.4, "max_center_offset": 0.4,
                "max_fragment_fraction": 0.1, "max_changed_fraction": 0.6, "min_semi_per_contour": 0.3,
                "max_translucent_fraction": 0.65, "max_uncertain_fraction": 0.2},
    "standard": {},
    "strict": {"min_side": 512, "max_top_contact": 0.01, "max_side_contact": 0.2, "max_center_offset": 0.2,
               "max_fragment_fraction": 0.02, "max_changed_fraction": 0.25, "min_semi_per_contour": 1.0,
               "max_translucent_fraction": 0.35, "max_uncertain_fraction": 0.05},
}


def quality_preset(name: str, **overrides) -> QualityThresholds:
    """The thresholds of strictness ``name`` (see :data:`QUALITY_PRESETS`) with overrides."""
    if name not in QUALITY_PRESETS:
        raise ValueError(f"unknown strictness {name!r}; choose one of {sorted(QUALITY_PRESETS)}.")
    return QualityThresholds.from_kwargs(**{**QUALITY_PRESETS[name], **overrides})
