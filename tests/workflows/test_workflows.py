"""Every shipped workflow checked against the node definitions, without the host.

``workflows/*.json`` are UI-format workflows (what the editor's Save writes and its template
browser lists); ``workflows/api/*.json`` are API-format graphs (what *Export (API)* writes and
``ld-portrait queue`` submits). For both, every node type must be one of ours (its declaration
is read from ``INPUT_TYPES`` / ``RETURN_TYPES``) or a core node in ``CORE_NODES`` below, every
input must exist with a value of the right kind and range, every link must join an output to
an input of the same type, and the UI bookkeeping (link table, slots, widget values, ids) must
be consistent. The UI and API versions of one workflow must describe the same graph.

The checker returns a list of readable problems instead of asserting on the first, so the
corruption tests below can show that it notices each kind of damage.
"""
from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from comfyui_ld_portrait import NODE_CLASS_MAPPINGS
from comfyui_ld_portrait.nodes.prompt import build_template
from comfyui_ld_portrait.cli.queue import check_api_graph, inspect_graph, rewrite_graph

WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows"
UI_WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
API_WORKFLOWS = sorted((WORKFLOW_DIR / "api").glob("*.json"))
GENERATION = "ld_portrait_20k_generate"
REFINE_FOLDER = "ld_portrait_refine_folder"

#: Values that name model files; their COMBO lists depend on what the user downloaded.
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
#: models/ folder of each loader that names a model file (properties.models "directory").
MODEL_DIRECTORIES = {"CheckpointLoaderSimple": "checkpoints", "LDPLayerDiffusionPatch": "layer_model",
                     "LDPTransparentDecoderLoader": "layer_model", "UNETLoader": "diffusion_models",
                     "DualCLIPLoader": "text_encoders", "VAELoader": "vae", "LoraLoaderModelOnly": "loras"}
#: Node title bar height in the editor: a node occupies [pos.y - 30, pos.y + size.h].
TITLE_HEIGHT = 30
MAX_SEED = 0xFFFFFFFFFFFFFFFF

# Sampler and scheduler names present in every host we support (checked against ComfyUI
# 0.3.64 and 0.8.0); a shipped workflow must not name one that an older host lacks.
SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
            "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddim", "uni_pc")
SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal")

# Declarations of the core nodes the shipped workflows use, in INPUT_TYPES form (from the
# hosts' nodes.py and comfy_extras/nodes_primitive.py). "ui_only" nodes exist only in the
# editor (they never appear in API graphs).
CORE_NODES = {
    "CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": (["sd_xl_base_1.0.safetensors"], {})}},
        "output": ("MODEL", "CLIP", "VAE")},
    "CLIPTextEncode": {
        "input": {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                               "clip": ("CLIP", {})}},
        "output": ("CONDITIONING",)},
    "EmptyLatentImage": {
        "input": {"required": {
            "width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
            "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}},
        "output": ("LATENT",)},
    "KSampler": {
        "input": {"required": {
            "model": ("MODEL", {}),
            "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1}),
            "sampler_name": (list(SAMPLERS), {}),
            "scheduler": (list(SCHEDULERS), {}),
            "positive": ("CONDITIONING", {}),
            "negative": ("CONDITIONING", {}),
            "latent_image": ("LATENT", {}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}},
        "output": ("LATENT",)},
    "VAEDecode": {
        "input": {"required": {"samples": ("LATENT", {}), "vae": ("VAE", {})}},
        "output": ("IMAGE",)},
    # Flux loaders and guidance (nodes.py, comfy_extras/nodes_flux.py of both hosts).
    "UNETLoader": {
        "input": {"required": {"unet_name": (["flux1-dev.safetensors"], {}),
                               "weight_dtype": (["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"], {})}},
        "output": ("MODEL",)},
    "DualCLIPLoader": {
        "input": {"required": {"clip_name1": (["clip_l.safetensors"], {}),
                               "clip_name2": (["t5xxl_fp16.safetensors"], {}),
                               "type": (["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image"], {})},
                  "optional": {"device": (["default", "cpu"], {"advanced": True})}},
        "output": ("CLIP",)},
    "VAELoader": {"input": {"required": {"vae_name": (["ae.safetensors"], {})}}, "output": ("VAE",)},
    "LoraLoaderModelOnly": {
        "input": {"required": {"model": ("MODEL", {}), "lora_name": (["layerlora.safetensors"], {}),
                               "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0,
                                                            "step": 0.01})}},
        "output": ("MODEL",)},
    "FluxGuidance": {
        "input": {"required": {"conditioning": ("CONDITIONING", {}),
                               "guidance": ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1})}},
        "output": ("CONDITIONING",)},
    "PreviewImage": {"input": {"required": {"images": ("IMAGE", {})}}, "output": ()},
    "SaveImage": {
        "input": {"required": {"images": ("IMAGE", {}),
                               "filename_prefix": ("STRING", {"default": "ComfyUI"})}},
        "output": ()},
    "PrimitiveInt": {
        "input": {"required": {"value": ("INT", {"min": -sys.maxsize, "max": sys.maxsize,
                                                 "control_after_generate": True})}},
        "output": ("INT",)},
    "Note": {"input": {"required": {"text": ("STRING", {"multiline": True})}}, "output": (),
             "ui_only": True},
    "MarkdownNote": {"input": {"required": {"text": ("STRING", {"multiline": True})}}, "output": (),
                     "ui_only": True},
}


# --------------------------------------------------------------------------------------------
# Node declarations
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # socket type, or one of WIDGET_TYPES
    options: dict
    required: bool
    choices: tuple | None = None  # COMBO options

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput")

    @property
    def has_control(self) -> bool:
        """The editor adds a 'control_after_generate' widget (value in CONTROL_VALUES) after it."""
        return self.is_widget and self.type == "INT" and bool(
            self.options.get("control_after_generate") or self.name in ("seed", "noise_seed"))

    @property
    def default(self):
        if "default" in self.options:
            return self.options["default"]
        if self.type == "COMBO":
            return self.choices[0] if self.choices else None
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(self.type)


@dataclass(frozen=True)
class NodeSpec:
    type: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    ui_only: bool = False
    by_name: dict = field(default_factory=dict, compare=False)

    @property
    def widgets(self) -> tuple[InputSpec, ...]:
        return tuple(spec for spec in self.inputs if spec.is_widget)


def _parse_input(name: str, declaration, required: bool) -> InputSpec:
    kind = declaration[0]
    options = dict(declaration[1]) if len(declaration) > 1 and declaration[1] else {}
    if isinstance(kind, (list, tuple)):
        return InputSpec(name, "COMBO", options, required, tuple(kind))
    if kind == "COMBO":  # newer declaration style: options in "options"
        return InputSpec(name, "COMBO", options, required, tuple(options.get("options", ())))
    return InputSpec(name, str(kind), options, required)


def make_spec(type_name: str, input_types: dict, outputs, output_names=None, ui_only=False) -> NodeSpec:
    inputs = []
    for section, required in (("required", True), ("optional", False)):
        for name, declaration in (input_types.get(section) or {}).items():
            inputs.append(_parse_input(name, declaration, required))
    outputs = tuple(str(kind) for kind in outputs)
    names = tuple(output_names) if output_names else outputs
    spec = NodeSpec(type_name, tuple(inputs), outputs, names, ui_only)
    spec.by_name.update({item.name: item for item in inputs})
    return spec


def node_spec(type_name: str) -> NodeSpec | None:
    """Declaration of a node type: ours from the class, core ones from CORE_NODES; else None."""
    if type_name in NODE_CLASS_MAPPINGS:
        cls = NODE_CLASS_MAPPINGS[type_name]
        return make_spec(type_name, cls.INPUT_TYPES(), cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", None))
    if type_name in CORE_NODES:
        core = CORE_NODES[type_name]
        return make_spec(type_name, core["input"], core["output"], ui_only=core.get("ui_only", False))
    return None


def _types_match(source: str, target: str) -> bool:
    if "*" in (source, target):
        return True
    return source in target.split(",") or target in source.split(",")


def check_value(spec: InputSpec, value) -> str | None:
    """None when ``value`` is acceptable for the widget input ``spec``, else the problem."""
    kind = spec.type
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"must be true/false, got {value!r}"
    if kind == "STRING":
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if kind == "COMBO":
        if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
            return None  # a model file: the list is whatever the user has downloaded
        return None if value in spec.choices else f"{value!r} is not one of {list(spec.choices)}"
    if kind in ("INT", "FLOAT"):
        number_types = (int,) if kind == "INT" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types) or (
                isinstance(value, float) and not math.isfinite(value)):
            return f"must be {'an integer' if kind == 'INT' else 'a number'}, got {value!r}"
        low, high = spec.options.get("min"), spec.options.get("max")
        if low is not None and value < low or high is not None and value > high:
            return f"{value!r} is outside {low}..{high}"
        return None
    return f"is a {kind} socket and needs a link, not the value {value!r}"


# --------------------------------------------------------------------------------------------
# UI format
# --------------------------------------------------------------------------------------------

def ui_widget_values(spec: NodeSpec, values: list) -> tuple[dict, list[str]]:
    """Map widgets_values to widget names (control entries as '<name>.control')."""
    problems, mapped, position = [], {}, 0
    expected = sum(2 if w.has_control else 1 for w in spec.widgets)
    if not isinstance(values, list) or len(values) != expected:
        count = len(values) if isinstance(values, list) else values
        return {}, [f"widgets_values has {count} entries, expected {expected} "
                    f"({', '.join(w.name + (' +control' if w.has_control else '') for w in spec.widgets)})"]
    for widget in spec.widgets:
        mapped[widget.name] = values[position]
        position += 1
        if widget.has_control:
            mapped[widget.name + ".control"] = values[position]
            position += 1
    return mapped, problems


def link_end_problem(link_table: dict, link_id, node_id, slot: int, *, incoming: bool) -> str | None:
    """Why a node's input (``incoming``) or output ``slot`` should not name link ``link_id``:
    the link is missing, or it ends (input) / starts (output) elsewhere; None when it fits.
    Links are ``[id, from node, from slot, to node, to slot, type]``."""
    link = link_table.get(link_id)
    if link is None:
        return f"refers to missing link {link_id}"
    end_node, end_slot = (link[3], link[4]) if incoming else (link[1], link[2])
    if (end_node, end_slot) == (node_id, slot):
        return None
    return (f"refers to link {link_id}, which {'ends' if incoming else 'starts'} at node {end_node} "
            f"slot {end_slot}")


def check_ui_workflow(data, spec_of=node_spec) -> list[str]:
    """Problems of a UI-format workflow (empty when it is consistent)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return ["not a JSON object"]
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        if key not in data:
            problems.append(f"missing top-level key {key!r}")
    if problems:
        return problems
    nodes, links = data["nodes"], data["links"]
    by_id = {}
    for node in nodes:
        if not isinstance(node.get("id"), int) or node["id"] in by_id:
            problems.append(f"node id {node.get('id')!r} is not a unique integer")
        by_id[node.get("id")] = node
    link_table = {}
    for link in links:
        if not (isinstance(link, list) and len(link) == 6 and isinstance(link[0], int)):
            problems.append(f"link {link!r} is not [id, from node, from slot, to node, to slot, type]")
            continue
        if link[0] in link_table:
            problems.append(f"link id {link[0]} is used twice")
        link_table[link[0]] = link
    if by_id and data["last_node_id"] < max(key for key in by_id if isinstance(key, int)):
        problems.append(f"last_node_id {data['last_node_id']} is below the largest node id")
    if link_table and data["last_link_id"] < max(link_table):
        problems.append(f"last_link_id {data['last_link_id']} is below the largest link id")

    for node in nodes:
        where = f"node {node.get('id')} ({node.get('type')})"
        spec = spec_of(node.get("type"))
        if spec is None:
            problems.append(f"{where}: unknown node type")
            continue
        if node.get("mode", 0) != 0:
            problems.append(f"{where}: mode {node.get('mode')} (muted or bypassed) in a shipped workflow")
        if not spec.ui_only and node.get("properties", {}).get("Node name for S&R") != spec.type:
            problems.append(f"{where}: properties['Node name for S&R'] should be {spec.type!r}")
        inputs = node.get("inputs", []) or []
        seen = set()
        for slot, entry in enumerate(inputs):
            name = entry.get("name")
            declared = spec.by_name.get(name)
            if declared is None:
                problems.append(f"{where}: unknown input {name!r}")
                continue
            if name in seen:
                problems.append(f"{where}: input {name!r} listed twice")
            seen.add(name)
            if declared.is_widget:
                if entry.get("widget", {}).get("name") != name:
                    problems.append(f"{where}: input {name!r} is a widget; its socket needs "
                                    f"\"widget\": {{\"name\": \"{name}\"}}")
            elif "widget" in entry:
                problems.append(f"{where}: input {name!r} is a socket, not a widget")
            expected_type = declared.type
            if entry.get("type") != expected_type and not (
                    declared.type == "COMBO" and entry.get("type") == "COMBO"):
                problems.append(f"{where}: input {name!r} has type {entry.get('type')!r}, "
                                f"declared {expected_type!r}")
            if entry.get("link") is not None:
                problem = link_end_problem(link_table, entry["link"], node["id"], slot, incoming=True)
                if problem:
                    problems.append(f"{where}: input {name!r} (slot {slot}) {problem}")
        for declared in spec.inputs:
            if declared.required and not declared.is_widget:
                entry = next((e for e in inputs if e.get("name") == declared.name), None)
                if entry is None or entry.get("link") is None:
                    problems.append(f"{where}: required input {declared.name!r} is not connected")
        outputs = node.get("outputs", []) or []
        if len(outputs) != len(spec.outputs):
            problems.append(f"{where}: {len(outputs)} outputs, declared {len(spec.outputs)}")
        for slot, entry in enumerate(outputs):
            if slot >= len(spec.outputs):
                break
            if entry.get("type") != spec.outputs[slot]:
                problems.append(f"{where}: output {slot} has type {entry.get('type')!r}, "
                                f"declared {spec.outputs[slot]!r}")
            if entry.get("name") != spec.output_names[slot]:
                problems.append(f"{where}: output {slot} is named {entry.get('name')!r}, "
                                f"declared {spec.output_names[slot]!r}")
            if "slot_index" in entry and entry["slot_index"] != slot:
                problems.append(f"{where}: output {slot} has slot_index {entry['slot_index']}")
            for link_id in entry.get("links") or []:
                problem = link_end_problem(link_table, link_id, node["id"], slot, incoming=False)
                if problem:
                    problems.append(f"{where}: output {slot} {problem}")
        values, found = ui_widget_values(spec, node.get("widgets_values", []))
        problems.extend(f"{where}: {problem}" for problem in found)
        for model in node.get("properties", {}).get("models", []):
            # The editor offers these downloads when the file is missing; they must describe
            # the file the node names and the folder it is looked up in.
            if model.get("name") not in values.values():
                problems.append(f"{where}: properties.models names {model.get('name')!r}, which "
                                "no widget of the node selects")
            if model.get("directory") != MODEL_DIRECTORIES.get(spec.type):
                problems.append(f"{where}: properties.models directory {model.get('directory')!r}, "
                                f"expected {MODEL_DIRECTORIES.get(spec.type)!r}")
            if not str(model.get("url", "")).startswith("https://huggingface.co/") or \
                    not str(model.get("url", "")).endswith("/" + str(model.get("name"))):
                problems.append(f"{where}: properties.models url {model.get('url')!r} is not a "
                                "Hugging Face download of that file")
        for widget in spec.widgets:
            if widget.name not in values:
                continue
            problem = check_value(widget, values[widget.name])
            if problem:
                problems.append(f"{where}: widget {widget.name!r} {problem}")
            if widget.has_control and values[widget.name + ".control"] not in CONTROL_VALUES:
                problems.append(f"{where}: control_after_generate of {widget.name!r} is "
                                f"{values[widget.name + '.control']!r}, not one of {CONTROL_VALUES}")

    for link_id, (_, source, source_slot, target, target_slot, kind) in link_table.items():
        source_node, target_node = by_id.get(source), by_id.get(target)
        if source_node is None or target_node is None:
            problems.append(f"link {link_id}: node {source if source_node is None else target} does not exist")
            continue
        outputs = source_node.get("outputs") or []
        inputs = target_node.get("inputs") or []
        if not (0 <= source_slot < len(outputs)) or link_id not in (outputs[source_slot].get("links") or []):
            problems.append(f"link {link_id}: output {source_slot} of node {source} does not list it")
            continue
        if not (0 <= target_slot < len(inputs)) or inputs[target_slot].get("link") != link_id:
            problems.append(f"link {link_id}: input {target_slot} of node {target} does not refer to it")
            continue
        source_spec, target_spec = spec_of(source_node["type"]), spec_of(target_node["type"])
        if source_spec is None or target_spec is None or source_slot >= len(source_spec.outputs):
            continue
        declared = target_spec.by_name.get(inputs[target_slot]["name"])
        if kind != source_spec.outputs[source_slot]:
            problems.append(f"link {link_id}: type {kind!r}, but node {source} output {source_slot} "
                            f"is {source_spec.outputs[source_slot]!r}")
        if declared is not None and not _types_match(source_spec.outputs[source_slot], declared.type):
            problems.append(
                f"link {link_id}: {source_node['type']} output {source_slot} "
                f"({source_spec.outputs[source_slot]}) cannot feed {target_node['type']}."
                f"{declared.name} ({declared.type})")
        if source_node.get("order", 0) >= target_node.get("order", 0):
            problems.append(f"link {link_id}: node {source} does not run before node {target} "
                            "(order)")
    for group in data["groups"]:
        bounding = group.get("bounding")
        if not isinstance(group.get("title"), str) or not (
                isinstance(bounding, list) and len(bounding) == 4):
            problems.append(f"group {group!r} needs a title and a 4-number bounding")
    return problems


def ui_graph(data, spec_of=node_spec) -> tuple[dict, set]:
    """(node id -> type, set of (from id, from slot, to id, input name)) of the executable nodes."""
    types = {}
    for node in data["nodes"]:
        spec = spec_of(node["type"])
        if spec is None or not spec.ui_only:
            types[str(node["id"])] = node["type"]
    by_id = {node["id"]: node for node in data["nodes"]}
    edges = set()
    for _, src, slot, dst, dst_slot, _ in data["links"]:
        inputs = by_id.get(dst, {}).get("inputs") or []
        name = inputs[dst_slot]["name"] if 0 <= dst_slot < len(inputs) else f"<slot {dst_slot}>"
        edges.add((str(src), slot, str(dst), name))
    return types, edges


# --------------------------------------------------------------------------------------------
# API format
# --------------------------------------------------------------------------------------------

def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and \
        isinstance(value[1], int) and not isinstance(value[1], bool)


def check_api_workflow(graph, spec_of=node_spec) -> list[str]:
    """Problems of an API-format graph (empty when it is consistent)."""
    if not isinstance(graph, dict) or not graph:
        return ["not a non-empty JSON object of nodes"]
    problems = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            problems.append(f"node {node_id}: no class_type")
            continue
        where = f"node {node_id} ({node['class_type']})"
        spec = spec_of(node["class_type"])
        if spec is None:
            problems.append(f"{where}: unknown node type")
            continue
        if spec.ui_only:
            problems.append(f"{where}: exists only in the editor; API graphs cannot hold it")
            continue
        inputs = node.get("inputs", {})
        for declared in spec.inputs:
            if declared.required and declared.name not in inputs:
                problems.append(f"{where}: required input {declared.name!r} is missing")
        for name, value in inputs.items():
            declared = spec.by_name.get(name)
            if declared is None:
                problems.append(f"{where}: unknown input {name!r}")
                continue
            if _is_link(value):
                source = graph.get(value[0])
                source_spec = spec_of(source.get("class_type")) if isinstance(source, dict) else None
                if not isinstance(source, dict):
                    problems.append(f"{where}: input {name!r} is linked to missing node {value[0]}")
                elif source_spec is None:
                    pass  # the source's unknown type is reported at that node
                elif not 0 <= value[1] < len(source_spec.outputs):
                    problems.append(f"{where}: input {name!r} is linked to output {value[1]} of "
                                    f"node {value[0]}, which has {len(source_spec.outputs)} outputs")
                elif not _types_match(source_spec.outputs[value[1]], declared.type):
                    problems.append(f"{where}: input {name!r} ({declared.type}) is linked to "
                                    f"{source['class_type']} output {value[1]} "
                                    f"({source_spec.outputs[value[1]]})")
                continue
            if not declared.is_widget:
                problems.append(f"{where}: input {name!r} ({declared.type}) needs a link, got {value!r}")
                continue
            problem = check_value(declared, value)
            if problem:
                problems.append(f"{where}: input {name!r} {problem}")
    return problems


def api_graph(graph) -> tuple[dict, set]:
    types = {node_id: node["class_type"] for node_id, node in graph.items()}
    edges = {(value[0], value[1], node_id, name)
             for node_id, node in graph.items() for name, value in node.get("inputs", {}).items()
             if _is_link(value)}
    return types, edges


def compare_ui_api(ui: dict, api: dict, spec_of=node_spec) -> list[str]:
    """Differences between the UI and API versions of one workflow (same ids in both)."""
    problems = []
    ui_types, ui_edges = ui_graph(ui, spec_of)
    api_types, api_edges = api_graph(api)
    if ui_types != api_types:
        problems.append(f"node types differ: UI {sorted(ui_types.items())} vs API {sorted(api_types.items())}")
    for edge in sorted(ui_edges - api_edges):
        problems.append(f"link {edge} is in the UI workflow only")
    for edge in sorted(api_edges - ui_edges):
        problems.append(f"link {edge} is in the API workflow only")
    for node in ui["nodes"]:
        spec = spec_of(node["type"])
        api_node = api.get(str(node["id"]))
        if spec is None or spec.ui_only or api_node is None:
            continue
        values, found = ui_widget_values(spec, node.get("widgets_values", []))
        if found:
            continue  # reported by check_ui_workflow
        linked = {entry["name"] for entry in node.get("inputs", []) if entry.get("link") is not None}
        for widget in spec.widgets:
            if widget.name in linked:
                continue
            api_value = api_node["inputs"].get(widget.name, widget.default)
            if values[widget.name] != api_value:
                origin = "set" if widget.name in api_node["inputs"] else "left at the default"
                problems.append(f"node {node['id']} ({node['type']}): widget {widget.name!r} is "
                                f"{values[widget.name]!r} in the UI but {api_value!r} in the API "
                                f"graph ({origin})")
    return problems


def overlapping_nodes(data) -> list[str]:
    """Pairs of UI nodes whose boxes (title bar included) overlap."""
    boxes = []
    for node in data["nodes"]:
        (x, y), (w, h) = node["pos"], node["size"]
        boxes.append((node["id"], x, y - TITLE_HEIGHT, x + w, y + h))
    clashes = []
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
        for b, bx0, by0, bx1, by1 in boxes[i + 1:]:
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                clashes.append(f"nodes {a} and {b} overlap")
    return clashes


# --------------------------------------------------------------------------------------------
# Tests: every shipped workflow
# --------------------------------------------------------------------------------------------

def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def api_twin(ui_path: Path) -> Path:
    """The API workflow a UI workflow names in extra.ld_portrait.api_workflow (the UI file is named for
    the template browser, its API twin keeps the short name the CLI uses)."""
    twin = _load(ui_path).get("extra", {}).get("ld_portrait", {}).get("api_workflow")
    assert twin, f"{ui_path.name}: extra.ld_portrait.api_workflow (its API twin) is missing"
    return WORKFLOW_DIR / twin


def ui_workflow(api_name: str) -> Path:
    """The UI workflow whose API twin is workflows/api/<api_name>.json."""
    found = [path for path in UI_WORKFLOWS if api_twin(path) == WORKFLOW_DIR / "api" / f"{api_name}.json"]
    assert len(found) == 1, f"expected one UI workflow for api/{api_name}.json, found {[p.name for p in found]}"
    return found[0]


def test_workflows_are_shipped_in_pairs():
    twins = [api_twin(path) for path in UI_WORKFLOWS]
    assert len(set(twins)) == len(twins), "two UI workflows name the same API twin"
    assert {WORKFLOW_DIR / "api" / f"{name}.json" for name in (GENERATION, REFINE_FOLDER)} <= set(twins)
    assert set(twins) == set(API_WORKFLOWS), "every UI workflow needs its API version in workflows/api/ and back"


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=[p.stem for p in UI_WORKFLOWS])
def test_ui_workflow_matches_node_definitions(path):
    data = _load(path)
    assert data.get("version") == 0.4
    assert check_ui_workflow(data) == []
    assert overlapping_nodes(data) == []


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=[p.stem for p in API_WORKFLOWS])
def test_api_workflow_matches_node_definitions(path):
    graph = _load(path)
    assert check_api_graph(graph, str(path)) is graph  # what `ld-portrait queue` accepts
    assert check_api_workflow(graph) == []


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=[p.stem for p in UI_WORKFLOWS])
def test_ui_and_api_versions_describe_the_same_graph(path):
    ui = _load(path)
    api = _load(api_twin(path))
    assert compare_ui_api(ui, api) == []


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=[p.stem for p in UI_WORKFLOWS])
def test_custom_template_text_in_workflows_parses(path):
    # The template text is used when the user switches the preset to 'custom'; it must work.
    for node in _load(path)["nodes"]:
        if node["type"] == "LDPPromptTemplate":
            preset, text = node["widgets_values"][:2]
            assert preset != "custom" or text.strip()
            template = build_template("custom", text)
            assert template.render(0, seed=0, mode="enumerate").prompt.strip()


def _node(graph: dict, class_type: str) -> tuple[str, dict]:
    found = [(node_id, node) for node_id, node in graph.items() if node["class_type"] == class_type]
    assert len(found) == 1, f"expected one {class_type}, found {len(found)}"
    return found[0]


def _source(graph: dict, node: dict, name: str) -> tuple[str, str]:
    """(class type, output name) feeding ``node``'s input ``name``."""
    value = node["inputs"][name]
    assert _is_link(value), f"{node['class_type']}.{name} should be linked, got {value!r}"
    source = graph[value[0]]
    return source["class_type"], node_spec(source["class_type"]).output_names[value[1]]


def test_generation_graph_runs_the_pipeline_in_order():
    graph = _load(WORKFLOW_DIR / "api" / f"{GENERATION}.json")
    _, patch = _node(graph, "LDPLayerDiffusionPatch")
    _, sampler = _node(graph, "KSampler")
    _, decode = _node(graph, "LDPTransparentDecode")
    _, pad = _node(graph, "LDPPadForeground")
    _, refine = _node(graph, "LDPRefineAlpha")
    _, gate = _node(graph, "LDPQualityGateSimple")
    _, save = _node(graph, "LDPSaveDataset")
    _, latent = _node(graph, "EmptyLatentImage")
    _, checkpoint = _node(graph, "CheckpointLoaderSimple")
    assert checkpoint["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert patch["inputs"]["patch_file"] == "layer_xl_transparent_attn.safetensors"
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (1024, 1024)
    assert _source(graph, sampler, "model") == ("LDPLayerDiffusionPatch", "model")
    assert _source(graph, sampler, "seed") == ("LDPPromptTemplate", "seed")
    for name, output in (("positive", "prompt"), ("negative", "negative")):
        encoder = graph[sampler["inputs"][name][0]]
        assert _source(graph, encoder, "text") == ("LDPPromptTemplate", output)
    assert _source(graph, decode, "samples") == ("KSampler", "LATENT")
    assert _source(graph, decode, "images") == ("VAEDecode", "IMAGE")
    assert decode["inputs"]["passes"] == "8"
    assert _source(graph, pad, "image") == ("LDPTransparentDecode", "foreground")
    # Padding uses the refined alpha, as `ld-portrait refine` does.
    assert _source(graph, pad, "alpha") == ("LDPRefineAlpha", "alpha")
    assert _source(graph, refine, "alpha") == ("LDPTransparentDecode", "alpha")
    assert _source(graph, refine, "image") == ("LDPTransparentDecode", "foreground")
    assert _source(graph, gate, "alpha") == ("LDPRefineAlpha", "alpha")
    assert _source(graph, gate, "raw_alpha") == ("LDPTransparentDecode", "alpha")
    assert _source(graph, gate, "changed") == ("LDPRefineAlpha", "changed")
    expected = {"foreground": ("LDPPadForeground", "padded"), "alpha": ("LDPRefineAlpha", "alpha"),
                "raw_alpha": ("LDPTransparentDecode", "alpha"),
                "error_map": ("LDPRefineAlpha", "error_map"),
                "stats": ("LDPRefineAlpha", "stats"), "keep": ("LDPQualityGateSimple", "keep"),
                "verdict": ("LDPQualityGateSimple", "verdict"), "sample_index": ("LDPPromptTemplate", "index"),
                "seed": ("LDPPromptTemplate", "seed"), "prompt": ("LDPPromptTemplate", "prompt"),
                "negative": ("LDPPromptTemplate", "negative"),
                "attributes": ("LDPPromptTemplate", "attributes")}
    assert {name: _source(graph, save, name) for name in expected} == expected
    assert save["inputs"]["dataset_name"] == "ld_portrait_20k"
    assert json.loads(save["inputs"]["models"])["checkpoint"] == "sd_xl_base_1.0.safetensors"


def test_generation_graph_is_driven_by_ld_portrait_queue():
    graph = _load(WORKFLOW_DIR / "api" / f"{GENERATION}.json")
    info = inspect_graph(graph)
    assert len(info.template_nodes) == 1 and len(info.save_nodes) == 1
    assert info.dataset_names == ("ld_portrait_20k",)
    template_id, _ = _node(graph, "LDPPromptTemplate")
    sampler_id, _ = _node(graph, "KSampler")
    # The sampler's seed follows the template (a link), so the queue leaves it alone.
    assert (sampler_id, "seed") not in info.sampler_seeds
    job, changes = rewrite_graph(graph, 1234, base_seed=7)
    assert job[template_id]["inputs"]["index"] == 1234 and job[template_id]["inputs"]["seed"] == 7
    save_id, _ = _node(job, "LDPSaveDataset")
    assert job[save_id]["inputs"]["sample_index"] == 1234
    assert job[sampler_id]["inputs"]["seed"] == [template_id, 3]
    assert graph[template_id]["inputs"]["index"] != 1234  # the file's graph is untouched
    assert {change.node_id for change in changes} >= {template_id, save_id}


def test_generation_ui_workflow_says_where_the_models_go():
    data = _load(ui_workflow(GENERATION))
    notes = "\n".join(node["widgets_values"][0] for node in data["nodes"] if node["type"] in ("Note", "MarkdownNote"))
    for needle in ("models/checkpoints/sd_xl_base_1.0.safetensors",
                   "models/layer_model/layer_xl_transparent_attn.safetensors",
                   "models/layer_model/vae_transparent_decoder.safetensors",
                   "ld-portrait models download", "ld-portrait queue"):
        assert needle in notes
    previewed = set()
    by_id = {node["id"]: node for node in data["nodes"]}
    for _, src, slot, dst, _, _ in data["links"]:
        if by_id[dst]["type"] == "PreviewImage":
            previewed.add((by_id[src]["type"], by_id[src]["outputs"][slot]["name"]))
    assert ("LDPRefineAlpha", "error_map") in previewed
    assert ("LDPCompositeBackground", "composite") in previewed
    template = next(node for node in data["nodes"] if node["type"] == "LDPPromptTemplate")
    assert template["widgets_values"][2:6] == [0, "increment", 0, "fixed"]  # index, seed controls


def test_refine_folder_graph_walks_one_counter():
    graph = _load(WORKFLOW_DIR / "api" / f"{REFINE_FOLDER}.json")
    _, load = _node(graph, "LDPLoadRGBA")
    _, save = _node(graph, "LDPSaveDataset")
    assert load["inputs"]["path"] == "ld_portrait_inputs"  # the host test provides this folder
    assert save["inputs"]["dataset_name"] == "ld_portrait_refined"
    # One counter picks the file and names the sample, so ids follow the folder order.
    assert load["inputs"]["index"] == save["inputs"]["sample_index"]
    assert _source(graph, load, "index") == ("PrimitiveInt", "INT")
    data = _load(ui_workflow(REFINE_FOLDER))
    counter = next(node for node in data["nodes"] if node["type"] == "PrimitiveInt")
    assert counter["widgets_values"] == [0, "increment"]


# --------------------------------------------------------------------------------------------
# Tests: the checker notices broken workflows
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generation():
    return (_load(ui_workflow(GENERATION)), _load(WORKFLOW_DIR / "api" / f"{GENERATION}.json"))


def _ui_node(data, type_name):
    return next(node for node in data["nodes"] if node["type"] == type_name)


def _broken(problems, *needles):
    assert problems, "the checker found nothing wrong"
    text = "\n".join(problems)
    for needle in needles:
        assert needle in text, text


def test_checker_reports_a_dropped_ui_link(generation):
    data = copy.deepcopy(generation[0])
    dropped = data["links"].pop(3)
    _broken(check_ui_workflow(data), f"missing link {dropped[0]}")
    _broken(compare_ui_api(data, generation[1]), "in the API workflow only")


def test_checker_reports_an_unconnected_required_socket(generation):
    data = copy.deepcopy(generation[0])
    refine = _ui_node(data, "LDPRefineAlpha")
    entry = next(e for e in refine["inputs"] if e["name"] == "alpha")
    data["links"] = [link for link in data["links"] if link[0] != entry["link"]]
    for node in data["nodes"]:
        for output in node.get("outputs") or []:
            output["links"] = [i for i in output.get("links") or [] if i != entry["link"]]
    entry["link"] = None
    _broken(check_ui_workflow(data), "required input 'alpha' is not connected")


def test_checker_reports_a_renamed_input(generation):
    data, api = copy.deepcopy(generation[0]), copy.deepcopy(generation[1])
    _ui_node(data, "LDPQualityGateSimple")["inputs"][0]["name"] = "matte"
    _broken(check_ui_workflow(data), "unknown input 'matte'")
    gate_id, gate = _node(api, "LDPQualityGateSimple")
    gate["inputs"]["matte"] = gate["inputs"].pop("alpha")
    _broken(check_api_workflow(api), "unknown input 'matte'", "required input 'alpha' is missing")


def test_checker_reports_mismatched_types(generation):
    data, api = copy.deepcopy(generation[0]), copy.deepcopy(generation[1])
    # Feed the refined alpha (MASK) into the save node's foreground (IMAGE).
    refine_id, _ = _node(api, "LDPRefineAlpha")
    _node(api, "LDPSaveDataset")[1]["inputs"]["foreground"] = [refine_id, 0]
    _broken(check_api_workflow(api), "'foreground' (IMAGE) is linked to LDPRefineAlpha output 0 (MASK)")
    link = next(link for link in data["links"] if link[5] == "MASK")
    link[5] = "IMAGE"
    _broken(check_ui_workflow(data), f"link {link[0]}: type 'IMAGE'")


def test_checker_reports_bad_widget_values(generation):
    data, api = copy.deepcopy(generation[0]), copy.deepcopy(generation[1])
    sampler = _ui_node(data, "KSampler")
    sampler["widgets_values"][4] = "no_such_sampler"
    _broken(check_ui_workflow(data), "'no_such_sampler' is not one of")
    sampler["widgets_values"].pop()
    _broken(check_ui_workflow(data), "widgets_values has 6 entries, expected 7")
    _ui_node(data, "LDPTransparentDecoderLoader")["widgets_values"] = ["other_decoder.safetensors"]
    _broken(check_ui_workflow(data), "properties.models names 'vae_transparent_decoder.safetensors'")
    _node(api, "EmptyLatentImage")[1]["inputs"]["width"] = 8
    _, decode = _node(api, "LDPTransparentDecode")
    decode["inputs"]["passes"] = "3"
    _broken(check_api_workflow(api), "8 is outside 16..16384", "'3' is not one of")
    _broken(compare_ui_api(generation[0], api), "'width' is 1024 in the UI but 8 in the API")


def test_checker_reports_broken_link_bookkeeping(generation):
    data = copy.deepcopy(generation[0])
    link = data["links"][0]
    link[4] += 1  # points at the wrong input slot
    data["last_link_id"] = 1
    data["nodes"].append(dict(copy.deepcopy(data["nodes"][0]), id=data["nodes"][0]["id"]))
    _broken(check_ui_workflow(data), f"link {link[0]}: input", "last_link_id 1 is below",
            "is not a unique integer")


def test_checker_reports_unknown_and_editor_only_nodes(generation):
    api = copy.deepcopy(generation[1])
    api["999"] = {"class_type": "NoSuchNode", "inputs": {}}
    api["998"] = {"class_type": "Note", "inputs": {"text": "hi"}}
    _node(api, "LDPPadForeground")[1]["inputs"]["image"] = ["12345", 0]
    _broken(check_api_workflow(api), "node 999 (NoSuchNode): unknown node type", "exists only in the editor",
            "'image' is linked to missing node 12345")
    data = copy.deepcopy(generation[0])
    _ui_node(data, "KSampler")["pos"] = list(_ui_node(data, "VAEDecode")["pos"])
    _broken(overlapping_nodes(data), "overlap")
