"""LDPPromptTemplate called directly, without the host: declaration, outputs, errors, wildcards."""
import json
import os
import subprocess
import sys
import types

import pytest

from comfyui_ld_portrait.nodes import prompt as prompt_node
from comfyui_ld_portrait.nodes.prompt import (
    NODE_CLASS_MAPPINGS,
    NODE_DISPLAY_NAME_MAPPINGS,
    LDPPromptTemplate,
    build_template,
    user_wildcard_dirs,
)
from comfyui_ld_portrait.prompting import load_preset, preset_text, sample_seed


@pytest.fixture(autouse=True)
def _no_user_wildcards(monkeypatch):
    monkeypatch.delenv("LDP_WILDCARD_DIRS", raising=False)
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)


def _run(**overrides):
    inputs = {"preset": "ld_portrait", "template": "", "index": 0, "seed": 0, "mode": "enumerate"}
    inputs.update(overrides)
    return LDPPromptTemplate().render(**inputs)


def test_declaration():
    assert NODE_CLASS_MAPPINGS == {"LDPPromptTemplate": LDPPromptTemplate}
    assert NODE_DISPLAY_NAME_MAPPINGS["LDPPromptTemplate"]
    cls = LDPPromptTemplate
    assert cls.CATEGORY == "LD-Portrait/prompt"
    assert "template" in cls.DESCRIPTION and "seed" in cls.DESCRIPTION
    assert callable(getattr(cls(), cls.FUNCTION))
    assert cls.RETURN_TYPES == ("STRING", "STRING", "STRING", "INT", "INT")
    assert cls.RETURN_NAMES == ("prompt", "negative", "attributes", "seed", "index")
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) and all(cls.OUTPUT_TOOLTIPS)
    inputs = cls.INPUT_TYPES()
    required = inputs["required"]
    assert list(required) == ["preset", "template", "index", "seed", "mode"]
    for name, (kind, options) in required.items():
        assert options.get("tooltip"), name
    presets, options = required["preset"]
    assert "ld_portrait" in presets and presets[-1] == "custom" and options["default"] == "ld_portrait"
    assert required["template"][1]["multiline"] and required["template"][1]["default"] == preset_text("ld_portrait")
    assert required["seed"][1]["max"] == 2 ** 64 - 1 and required["index"][1]["max"] == 2 ** 64 - 1
    assert required["mode"][0][:2] == ["enumerate", "random"]


def test_outputs_for_the_preset_match_the_library():
    prompt, negative, attributes, seed, index = _run(index=41, seed=77, mode="random")
    expected = load_preset("ld_portrait").render(41, seed=77, mode="random")
    assert (prompt, negative) == (expected.prompt, expected.negative)
    assert json.loads(attributes) == expected.attributes
    assert seed == sample_seed(77, 41) and isinstance(seed, int)
    assert index == 41
    assert "portrait photo" in prompt and "watermark" in negative


def test_consecutive_indices_give_different_prompts_and_seeds():
    outputs = [_run(index=i, seed=3) for i in range(200)]
    assert len({out[0] for out in outputs}) == 200
    assert len({out[3] for out in outputs}) == 200


def test_preset_ignores_the_template_text():
    assert _run(template="{this is|ignored}")[0] == _run()[0]


def test_custom_template_with_shipped_wildcards():
    text = "photo of a {g: woman|man} with __hair_color__ hair\n[negative]\nblurry"
    prompt, negative, attributes, seed, index = _run(preset="custom", template=text, index=3, mode="sequential")
    assert prompt.startswith("photo of a man with ") and prompt.endswith(" hair")
    assert negative == "blurry"
    assert json.loads(attributes) == {"g": "man"}


def test_parse_errors_are_value_errors_with_line_and_column():
    with pytest.raises(ValueError) as caught:
        _run(preset="custom", template="a photo\nof {red|blue hair")
    assert "template:2:4:" in str(caught.value) and "unbalanced '{'" in str(caught.value)
    with pytest.raises(ValueError, match="template:1:3: unknown wildcard '__nope__'"):
        _run(preset="custom", template="a __nope__")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="template text is empty"):
        _run(preset="custom", template="  \n")
    with pytest.raises(ValueError, match="unknown preset"):
        _run(preset="missing")
    with pytest.raises(ValueError, match="mode"):
        _run(mode="shuffled")


def test_user_wildcards_from_environment_override_shipped(tmp_path, monkeypatch):
    (tmp_path / "hair_color.txt").write_text("electric blue\n", encoding="utf-8")
    monkeypatch.setenv("LDP_WILDCARD_DIRS", str(tmp_path))
    assert user_wildcard_dirs() == (tmp_path,)
    for index in range(30):
        attributes = json.loads(_run(index=index)[2])
        assert attributes.get("hair_color") in (None, "electric blue")
    text = "__hair_color__ and __my_list__"
    (tmp_path / "my_list.txt").write_text("one\ntwo\n", encoding="utf-8")
    assert _run(preset="custom", template=text, index=1, mode="sequential")[0] == "electric blue and two"


def test_user_wildcards_from_host_folders(tmp_path, monkeypatch):
    user, inputs = tmp_path / "user", tmp_path / "input"
    (user / "ld_portrait_wildcards").mkdir(parents=True)
    (inputs / "ld_portrait_wildcards").mkdir(parents=True)
    (user / "ld_portrait_wildcards" / "thing.txt").write_text("from user\n", encoding="utf-8")
    (inputs / "ld_portrait_wildcards" / "thing.txt").write_text("from input\n", encoding="utf-8")
    (inputs / "ld_portrait_wildcards" / "other.txt").write_text("input only\n", encoding="utf-8")
    host = types.ModuleType("folder_paths")
    host.get_user_directory = lambda: str(user)
    host.get_input_directory = lambda: str(inputs)
    monkeypatch.setitem(sys.modules, "folder_paths", host)
    assert user_wildcard_dirs() == (user / "ld_portrait_wildcards", inputs / "ld_portrait_wildcards")
    assert _run(preset="custom", template="__thing__, __other__")[0] == "from user, input only"
    del host.get_user_directory  # old hosts have no user directory
    assert user_wildcard_dirs() == (inputs / "ld_portrait_wildcards",)


def test_editing_a_wildcard_file_changes_is_changed_and_the_output(tmp_path, monkeypatch):
    monkeypatch.setenv("LDP_WILDCARD_DIRS", str(tmp_path))
    path = tmp_path / "colour.txt"
    path.write_text("red\n", encoding="utf-8")
    inputs = {"preset": "custom", "template": "__colour__", "index": 0, "seed": 0, "mode": "enumerate"}
    before = LDPPromptTemplate.IS_CHANGED(**inputs)
    assert LDPPromptTemplate.IS_CHANGED(**inputs) == before
    assert LDPPromptTemplate().render(**inputs)[0] == "red"
    path.write_text("green\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10 ** 9))
    assert LDPPromptTemplate.IS_CHANGED(**inputs) != before
    assert LDPPromptTemplate().render(**inputs)[0] == "green"


def test_parsed_templates_are_cached():
    assert build_template("ld_portrait") is build_template("ld_portrait")


def test_module_imports_without_the_host():
    code = ("import sys; import comfyui_ld_portrait.nodes.prompt as m; "
            "m.LDPPromptTemplate.INPUT_TYPES(); "
            "print(sorted(name for name in ('comfy', 'folder_paths', 'nodes') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
    assert prompt_node.CATEGORY == "LD-Portrait/prompt"


def test_a_lone_surrogate_is_a_clear_error_with_line_and_column():
    # It used to raise UnicodeEncodeError later, far from the cause.
    node = LDPPromptTemplate()
    text = "a portrait of\na \ud83d person"  # half of an emoji's surrogate pair
    with pytest.raises(ValueError, match=r"line 2, column 3: U\+D83D") as caught:
        node.render("custom", text, 0, 0, "random")
    assert not isinstance(caught.value, UnicodeError)
    assert node.render("custom", "a portrait of\na \U0001F600 person", 0, 0, "random")[0]
