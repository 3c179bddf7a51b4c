"""--param / --gate names, ranges and help come from the dataclass fields."""
from __future__ import annotations

import dataclasses

import pytest

from comfyui_ld_portrait.pipeline.params import check_overrides, describe_fields, field_specs


@dataclasses.dataclass(frozen=True)
class _Knobs:
    """A stand-in with one documented field, one bare field and one 'auto' field."""

    depth: float = dataclasses.field(default=2.5, metadata={"min": 0.5, "max": 9.0,
                                                            "doc": "How deep it goes."})
    count: int = 3
    width: int | None = None


def test_specs_follow_the_metadata_and_fall_back_without_it():
    depth, count, width = field_specs(_Knobs)
    assert (depth.range_text, depth.default_text, depth.doc) == ("0.5..9.0", "2.5",
                                                                 "How deep it goes.")
    assert (count.range_text, count.default_text, count.doc) == ("int", "3", "")
    assert (width.range_text, width.default_text) == ("int or auto", "auto")
    text = describe_fields(_Knobs)
    assert text.splitlines() == ["  depth  (0.5..9.0, default 2.5)", "      How deep it goes.",
                                 "  count  (int, default 3)", "  width  (int or auto, default auto)"]


def test_unknown_names_list_every_valid_name_with_its_range():
    with pytest.raises(ValueError) as caught:
        check_overrides({"dpeth": 1}, _Knobs, "knob")
    message = str(caught.value)
    assert "unknown knob 'dpeth'" in message
    assert "depth  (0.5..9.0, default 2.5)" in message and "count  (int, default 3)" in message


def test_values_outside_the_range_are_refused_and_inside_accepted():
    assert check_overrides({"depth": 9.0, "count": -4}, _Knobs, "knob") == {"depth": 9.0,
                                                                             "count": -4}
    with pytest.raises(ValueError, match=r"knob depth=9.5 is out of range 0.5..9.0"):
        check_overrides({"depth": 9.5}, _Knobs, "knob")


def test_the_real_parameter_classes_are_described_field_by_field():
    from comfyui_ld_portrait.refine.connectivity import RefineParams
    from comfyui_ld_portrait.refine.quality import QualityThresholds

    for cls in (RefineParams, QualityThresholds):
        text = describe_fields(cls)
        for field in dataclasses.fields(cls):
            assert f"  {field.name}  (" in text
    min_side = next(s for s in field_specs(QualityThresholds) if s.name == "min_side")
    assert min_side.minimum is not None and min_side.range_text in describe_fields(
        QualityThresholds)
