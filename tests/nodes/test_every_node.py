"""One declaration check over every node the pack registers (NODE_CLASS_MAPPINGS), so a node
added in any module is held to the same rules without being listed here."""
import pytest

from comfyui_ld_portrait import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

ALL_NODES = sorted(NODE_CLASS_MAPPINGS)
SECTIONS = {"required", "optional", "hidden"}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    assert isinstance(spec, dict) and set(spec) <= SECTIONS, f"sections {sorted(spec)}"
    for section in ("required", "optional"):
        for name, declaration in spec.get(section, {}).items():
            yield section, name, declaration


def test_the_pack_registers_its_nodes_under_ldp_ids_with_display_names():
    assert len(ALL_NODES) >= 10
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    for node_id in ALL_NODES:
        assert node_id.startswith("LDP"), node_id
        assert NODE_DISPLAY_NAME_MAPPINGS[node_id].endswith("(LD-Portrait)"), node_id
    names = list(NODE_DISPLAY_NAME_MAPPINGS.values())
    assert len(set(names)) == len(names), "two nodes share a display name"


@pytest.mark.parametrize("node_id", ALL_NODES)
def test_inputs_are_declared_with_tooltips_and_valid_defaults(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    assert cls.INPUT_TYPES()["required"] or cls.INPUT_TYPES().get("optional"), "no inputs"
    for section, name, declaration in _inputs(cls):
        where = f"{node_id}.{name}"
        assert isinstance(declaration, tuple) and 1 <= len(declaration) <= 2, where
        kind = declaration[0]
        options = declaration[1] if len(declaration) == 2 else {}
        tooltip = options.get("tooltip")
        assert isinstance(tooltip, str) and tooltip.strip(), f"{where} has no tooltip"
        assert tooltip.strip() != name, f"{where}: the tooltip only repeats the name"
        if kind in ("INT", "FLOAT"):
            bounds = [options[key] for key in ("min", "default", "max") if key in options]
            assert bounds == sorted(bounds), f"{where}: min <= default <= max fails: {bounds}"
            assert "default" in options or options.get("forceInput"), f"{where}: a widget needs a default"
            if kind == "INT":
                assert all(isinstance(value, int) for value in bounds), where
        elif isinstance(kind, list):  # a combo: its default, if any, must be one of the choices
            assert kind, f"{where}: empty choice list"
            if "default" in options:
                assert options["default"] in kind, where
        elif kind == "BOOLEAN":
            assert isinstance(options.get("default", False), bool), where
        if name == "alpha":
            assert kind == "MASK" and "1 = opaque" in tooltip, f"{where}: alpha must say 1 = opaque"


@pytest.mark.parametrize("node_id", ALL_NODES)
def test_outputs_function_category_and_description(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    outputs = (cls.RETURN_TYPES, cls.RETURN_NAMES, cls.OUTPUT_TOOLTIPS)
    assert len({len(part) for part in outputs}) == 1, f"{node_id}: outputs, names and tooltips differ in count"
    assert len(set(cls.RETURN_NAMES)) == len(cls.RETURN_NAMES), f"{node_id}: two outputs share a name"
    for name, tooltip in zip(cls.RETURN_NAMES, cls.OUTPUT_TOOLTIPS):
        assert isinstance(tooltip, str) and tooltip.strip() and tooltip.strip() != name, (node_id, name)
        if name == "alpha":
            assert "1 = opaque" in tooltip, f"{node_id}: output alpha must say 1 = opaque"
    if getattr(cls, "OUTPUT_IS_LIST", None) is not None:
        assert len(cls.OUTPUT_IS_LIST) == len(cls.RETURN_TYPES), node_id
    assert cls.CATEGORY.startswith("LD-Portrait/"), node_id
    assert callable(getattr(cls(), cls.FUNCTION)), f"{node_id}: FUNCTION {cls.FUNCTION!r} is not a method"
    description = cls.DESCRIPTION.strip()
    assert description.endswith((".", ")")) and " " in description, f"{node_id}: DESCRIPTION is not a sentence"


def test_descriptions_are_not_copied_between_nodes():
    first_sentences = [NODE_CLASS_MAPPINGS[n].DESCRIPTION.strip().split(". ")[0] for n in ALL_NODES]
    assert len(set(first_sentences)) == len(first_sentences)
