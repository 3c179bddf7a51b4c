"""check_pixel_count: the whole-number pixel check shared by parameter records."""
from __future__ import annotations

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
