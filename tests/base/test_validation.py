"""check_pixel_count: the whole-number pixel check shared by parameter records."""
from __future__ import annotations

import re

import numpy as np
import pytest

from comfyui_ld_portrait.base.validation import check_pixel_count


@pytest.mark.parametrize("value", [0, 7, 512])
def test_whole_numbers_in_range_pass_through(value):
    assert check_pixel_count(value, "band", 0, 512) == value


@pytest.mark.parametrize("value, message", [
    (513, "band must be a whole number of pixels in 0..512, got 513."),
    (-1, "band must be a whole number of pixels in 0..512, got -1."),
    (2.0, "band must be a whole number of pixels in 0..512, got 2.0."),
    (True, "band must be a whole number of pixels in 0..512, got True."),
])
def test_values_outside_or_not_whole_are_refused_with_the_range(value, message):
    with pytest.raises(ValueError) as caught:
        check_pixel_count(value, "band", 0, 512)
    assert str(caught.value) == message


def test_without_an_upper_bound_only_the_lower_one_applies():
    assert check_pixel_count(1 << 20, "size", 8) == 1 << 20
    with pytest.raises(ValueError, match=r"size must be a whole number of pixels >= 8, got 7\."):
        check_pixel_count(7, "size", 8)


def test_bounded_fields_carry_their_range_and_are_checked():
    import dataclasses

    from comfyui_ld_portrait.base.fields import bounded_field, check_bounded_fields

    @dataclasses.dataclass
    class Plain:
        width: int = bounded_field(3, 1, 31, "frames")
        level: float = bounded_field(0.5, 0.0, 1.0, "a level")
        name: str = "free"  # no metadata: not checked

    check_bounded_fields(Plain())
    assert dataclasses.fields(Plain)[0].metadata == {"min": 1, "max": 31, "doc": "frames"}
    for bad, message in ((Plain(width=0), "width=0 is outside its range [1, 31]: frames"),
                         (Plain(width=2.5), "width must be a whole number in 1..31; got 2.5. frames"),
                         (Plain(width=True), "width must be a whole number"),
                         (Plain(level=1.5), "level=1.5 is outside its range [0.0, 1.0]: a level"),
                         (Plain(level=float("nan")), "level must be a number in 0.0..1.0; got nan"),
                         (Plain(level="0.5"), "level must be a number")):
        with pytest.raises(ValueError, match=re.escape(message)):
            check_bounded_fields(bad)
    values = Plain(width=np.int64(4), level=np.float32(0.25))
    check_bounded_fields(values)  # numpy scalars pass and are stored as plain Python numbers
    assert type(values.width) is int and type(values.level) is float


def test_one_rule_decides_a_fields_kind_from_its_annotation():
    import dataclasses
    from typing import Optional

    from comfyui_ld_portrait.base.fields import field_kind

    @dataclasses.dataclass
    class Kinds:
        a: int = 1
        b: "float | None" = None
        c: "int | None" = None
        d: bool = True
        e: Optional[int] = None
        f: str = ""
        g: "tuple | None" = None

    kinds = {spec.name: field_kind(spec) for spec in dataclasses.fields(Kinds)}
    assert kinds == {"a": ("int", False), "b": ("float", True), "c": ("int", True),
                     "d": ("bool", False), "e": ("int", True), "f": ("other", False),
                     "g": ("other", True)}


def test_settings_are_checked_when_made_and_across_fields():
    import dataclasses

    from comfyui_ld_portrait.matting.params import KeyParams, VideoMatteParams
    from comfyui_ld_portrait.base.fields import Settings, bounded_field
    from comfyui_ld_portrait.refine.quality_params import QualityThresholds
    from comfyui_ld_portrait.refine.refine_params import AUTOMATIC_SIZES, RefineParams

    @dataclasses.dataclass(frozen=True)
    class Window(Settings):
        size: "int | None" = bounded_field(None, 1, 9, "pixels")
        low: float = bounded_field(0.2, 0.0, 1.0, "low")
        high: float = bounded_field(0.8, 0.0, 1.0, "high")

        def check_together(self):
            if not self.low < self.high:
                raise ValueError("low must be below high")

    assert Window().size is None and Window(size=4.0).size == 4
    with pytest.raises(ValueError, match=re.escape("size must be a whole number in 1..9 or None")):
        Window(size=4.5)
    with pytest.raises(ValueError, match="low must be below high"):
        Window(low=0.9)
    with pytest.raises(ValueError, match=re.escape("quality threshold max_people=0 is outside")):
        QualityThresholds(max_people=0)
    for make, message in ((lambda: RefineParams(flat_step=1.5), "flat_step=1.5 is outside"),
                          (lambda: RefineParams(hole_min_area=2.5), "hole_min_area must be a whole"),
                          (lambda: RefineParams(background_level=0.6, see_through_level=0.5),
                           "background_level"),
                          (lambda: KeyParams(clip_black=0.9, clip_white=0.5), "clip_white"),
                          (lambda: KeyParams(spill_strength=2.0), "spill_strength=2.0"),
                          (lambda: VideoMatteParams(window=4), "window must be an odd"),
                          (lambda: VideoMatteParams(band=-1), "band=-1 is outside")):
        with pytest.raises(ValueError, match=re.escape(message)):
            make()
    assert AUTOMATIC_SIZES == ("reach", "solid_radius", "hole_min_area", "frame_fade_depth")
    assert RefineParams(reach=np.float64(12)).validate().reach == 12.0


