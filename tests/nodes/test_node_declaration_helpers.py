"""The declaration helpers of nodes/_common.py that every node module builds its sockets with."""
import pytest

from comfyui_ld_portrait.nodes._common import node_outputs, number_input


def test_output_table_keeps_type_name_and_tooltip_together_and_joins_continued_lines():
    types, names, tooltips = node_outputs("""
        MASK alpha: Alpha, 1 = opaque portrait: a colon inside the tooltip stays
            in the tooltip,
            over two continued lines.

        IMAGE rgba: Colour and alpha (IMAGE [B,H,W,4]).
    """)
    assert types == ("MASK", "IMAGE")
    assert names == ("alpha", "rgba")
    assert tooltips == ("Alpha, 1 = opaque portrait: a colon inside the tooltip stays in the tooltip, over two "
                        "continued lines.", "Colour and alpha (IMAGE [B,H,W,4]).")


@pytest.mark.parametrize("table", ["", "   \n  ", "MASK alpha", "MASK: no name", "MASK alpha extra: x",
                                   "MASK alpha:   "])
def test_output_table_refuses_entries_that_are_not_type_name_tooltip(table):
    with pytest.raises(ValueError, match="entry|empty"):
        node_outputs(table)


def test_number_widget_keeps_an_off_step_float_default_unrounded():
    kind, options = number_input("FLOAT", 2 / 255, 0.0, 1.0, "level", step=0.001)
    assert kind == "FLOAT" and options["round"] is False and options["default"] == 2 / 255
    assert "round" not in number_input("FLOAT", 0.25, 0.0, 1.0, "level", step=0.05)[1]
    assert "round" not in number_input("INT", 3, 1, 31, "frames", step=2)[1]
    assert "step" not in number_input("INT", 0, 0, 512, "band")[1]
