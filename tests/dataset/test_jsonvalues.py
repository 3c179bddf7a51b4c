"""JSON for meta and the nodes' JSON text inputs: depth limit instead of a RecursionError."""
import pytest

from comfyui_ld_portrait.dataset import models_value, parse_json_input
from comfyui_ld_portrait.dataset.jsonvalues import MAX_JSON_DEPTH, json_depth


def test_json_depth_by_hand():
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth([[[[]]]], limit=2) == 3  # stops counting past the limit
    assert MAX_JSON_DEPTH == 32


@pytest.mark.parametrize("depth", [40, 5000])
def test_deeply_nested_json_input_is_a_clear_error_not_a_recursion_error(depth):
    text = '{"a": ' * depth + "1" + "}" * depth
    with pytest.raises(ValueError, match="attributes is nested more than 32 levels") as info:
        parse_json_input(text, "attributes", kinds=(dict,))
    assert not isinstance(info.value, RecursionError)


def test_nesting_at_the_limit_is_accepted_and_parsed_values_are_checked_too():
    text = "[" * 32 + "]" * 32
    assert json_depth(parse_json_input(text, "stats")) == 32
    nested: list = []
    for _ in range(40):
        nested = [nested]
    with pytest.raises(ValueError, match="verdict is nested more than"):
        parse_json_input(nested, "verdict")
    with pytest.raises(ValueError, match="models is nested more than"):
        models_value("[" * 3000 + "]" * 3000)
