"""The node declarations of nodes/_schema.py: one declaration, the classic form built from it
here, and the V3 form built against a stand-in for the host's ``comfy_api.latest.io`` (the real
one exists only inside ComfyUI; tests/host compares both forms on the real hosts)."""
import enum
import types

from comfyui_ld_portrait.nodes import _schema
from comfyui_ld_portrait.nodes._schema import Output, choice, invert, mask, number, text, whole_number


def test_number_widget_keeps_an_off_step_float_default_unrounded():
    kind, options = number("level", 2 / 255, 0.0, 1.0, "level", step=0.001).classic()
    assert kind == "FLOAT" and options["round"] is False and options["default"] == 2 / 255
    assert "round" not in number("level", 0.25, 0.0, 1.0, "level", step=0.05).classic()[1]
    assert "round" not in whole_number("frames", 3, 1, 31, "frames", step=2).classic()[1]
    assert "step" not in whole_number("band", 0, 0, 512, "band").classic()[1]


def test_classic_entries_leave_unset_options_out():
    assert mask("m", "A mask.").classic() == ("MASK", {"tooltip": "A mask."})
    assert invert("Flip.").classic() == ("BOOLEAN", {"default": False, "tooltip": "Flip."})
    assert choice("mode", ("a", "b"), "a", "Mode.").classic() == (["a", "b"], {"default": "a", "tooltip": "Mode."})
    assert text("names", "Names.", force_input=True).classic() == (
        "STRING", {"forceInput": True, "tooltip": "Names."})
    assert text("t", "T.", default="", multiline=True).classic()[1] == {
        "default": "", "multiline": True, "tooltip": "T."}


class _Declared:
    """A small declared node: two required inputs, two optional, a hidden input, two outputs."""

    DISPLAY_NAME = "Declared (LD-Portrait)"
    CATEGORY = "LD-Portrait/test"
    DESCRIPTION = "A node for the declaration tests."
    FUNCTION = "run"
    OUTPUT_NODE = True
    HIDDEN = {"api_graph": "PROMPT"}
    OUTPUTS = (Output("MASK", "alpha", "Alpha, 1 = opaque."), Output("LDP_THING", "thing", "A thing."))

    @classmethod
    def inputs(cls):
        return [mask("alpha", "Alpha, 1 = opaque."), number("level", 2 / 255, 0.0, 1.0, "Level.", step=0.01),
                choice("mode", ("a", "b"), "a", "Mode.", optional=True), invert()]

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return sorted(inputs)

    def run(self, alpha, level, mode="a", invert=False, api_graph=None):
        return {"ui": {"text": [mode]}, "result": (alpha, api_graph)}


def test_classic_form_has_the_classic_attributes_in_declared_order():
    node = _schema.comfy_node(type("LDPDeclared", (_Declared,), {}))
    assert list(node.INPUT_TYPES()) == ["required", "optional", "hidden"]
    assert list(node.INPUT_TYPES()["required"]) == ["alpha", "level"]
    assert list(node.INPUT_TYPES()["optional"]) == ["mode", "invert"]
    assert node.INPUT_TYPES()["hidden"] == {"api_graph": "PROMPT"}
    assert node.RETURN_TYPES == ("MASK", "LDP_THING") and node.RETURN_NAMES == ("alpha", "thing")
    assert node.OUTPUT_TOOLTIPS == ("Alpha, 1 = opaque.", "A thing.")
    classes, names = _schema.node_mappings(node)
    assert classes == {"LDPDeclared": node} and names == {"LDPDeclared": "Declared (LD-Portrait)"}


def _stand_in_io():
    """Enough of ``comfy_api.latest.io`` to build a V3 node: every Input/Output records its
    arguments, Schema keeps its keywords, NodeOutput its values."""
    def io_type(name):
        class Input:
            def __init__(self, id, **options):
                self.type, self.id, self.options = name, id, options

        class Output:
            def __init__(self, **options):
                self.type, self.options = name, options

        return types.SimpleNamespace(Input=Input, Output=Output)

    class NodeOutput:
        def __init__(self, *args, ui=None):
            self.args, self.ui = args, ui

    class ComfyNode:
        hidden = types.SimpleNamespace(prompt={"1": {}})

    standard = {attribute: io_type(kind) for kind, attribute in _schema._STANDARD_TYPES.items()}
    return types.SimpleNamespace(
        **standard, Custom=io_type, Schema=lambda **kw: types.SimpleNamespace(**kw), ComfyNode=ComfyNode,
        NodeOutput=NodeOutput, Hidden=enum.Enum("Hidden", {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}))


def test_v3_form_declares_the_same_inputs_outputs_and_runs_the_function(monkeypatch):
    monkeypatch.setattr(_schema, "_host_checks_combo_values", lambda: False)
    io = _stand_in_io()
    node = _schema._v3_node(io, type("LDPDeclared", (_Declared,), {}))
    schema = node.define_schema()
    assert schema.node_id == "LDPDeclared" and schema.display_name == "Declared (LD-Portrait)"
    assert schema.is_output_node is True and schema.is_deprecated is False
    assert [(i.id, i.type, i.options["optional"]) for i in schema.inputs] == [
        ("alpha", "MASK", False), ("level", "FLOAT", False), ("mode", "COMBO", True), ("invert", "BOOLEAN", True)]
    level = schema.inputs[1].options
    assert [level[key] for key in ("default", "min", "max", "step", "round")] == [2 / 255, 0.0, 1.0, 0.01, False]
    assert schema.inputs[2].options["options"] == ["a", "b"]
    assert [(output.type, output.options["display_name"]) for output in schema.outputs] == [
        ("MASK", "alpha"), ("LDP_THING", "thing")]
    assert [hidden.value for hidden in schema.hidden] == ["PROMPT"]

    result = node.execute(alpha="A", level=0.5, mode="b")
    assert result.args == ("A", {"1": {}}) and result.ui == {"text": ["b"]}
    assert node.fingerprint_inputs(level=0.5, mode="a") == ["level", "mode"]
    # Where the host does not check combo values (0.3.64), the node does, for the combos only.
    assert list(node.validate_inputs.__func__.__signature__.parameters) == ["cls", "mode"]
    assert node.validate_inputs(mode="a") is True and node.validate_inputs(mode=None) is True
    assert "'c' is not one of ['a', 'b']" in node.validate_inputs(mode="c")
