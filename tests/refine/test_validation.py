"""check_pixel_count: the whole-number pixel check shared by parameter records."""
from __future__ import annotations

import re

import pytest

from comfyui_ld_portrait.refine.validation import check_pixel_count


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

    from comfyui_ld_portrait.refine.fields import bounded_field, check_bounded_fields

    @dataclasses.dataclass
    class Settings:
        width: int = bounded_field(3, 1, 31, "frames")
        level: float = bounded_field(0.5, 0.0, 1.0, "a level")
        name: str = "free"  # no metadata: not checked

    check_bounded_fields(Settings())
    assert dataclasses.fields(Settings)[0].metadata == {"min": 1, "max": 31, "doc": "frames"}
    for bad, message in ((Settings(width=0), "width must be a whole number in 1..31, got 0"),
                         (Settings(width=2.5), "width must be a whole number"),
                         (Settings(width=True), "width must be a whole number"),
                         (Settings(level=1.5), "level must be a number in 0.0..1.0, got 1.5"),
                         (Settings(level="0.5"), "level must be a number")):
        with pytest.raises(ValueError, match=re.escape(message)):
            check_bounded_fields(bad)
