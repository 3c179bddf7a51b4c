"""Workflows saved by hand BEFORE the V3 declarations still load, keep their values and run.

``tests/host/data/hand_saved_<host>_ui.json`` is what the editor's Save wrote
(``app.graph.serialize()``) and ``..._api.json`` the API prompt it would queue
(``app.graphToPrompt().output``), both made in the real editor in headless Chromium on that host
with the pack as it was before the change (commit a6aa757, classic ``INPUT_TYPES`` nodes): every
LD-Portrait node added (the deprecated alias Trimap from Mask included), widgets set through the
widget objects to values other than their defaults (numbers, combos, switches, text, and the
control under each INT that has one), and links where the types match. ``comfy080`` was saved
on ComfyUI 0.8.0 (frontend 1.35.9), ``comfy0364`` on 0.3.64 (frontend 1.27.10).

With the current pack on the host of ``COMFYUI_DIR`` (the files saved on that host version; both
on a version neither was saved on), the UI workflow is opened with ``app.loadGraphData`` and:

* every node comes back with its id and type, every type registered in the editor (no
  missing-node placeholder) and none marked with errors;
* ``app.graphToPrompt()`` gives every node the same inputs, names and values (links included),
  as the API prompt saved before the change: widget values land on the same inputs. An input
  the saved prompt lacks must hold its declared default: it is a widget added after the save
  (Connectivity Refine's ``soft_company_fraction``, appended after the last widget by the
  soft-company fill that came after the V3 change), which the editor fills with its default;
* the host validates and runs the part of that prompt an output node needs (POST /prompt,
  then success in /history), from small RGBA portraits, frames and masks written into the
  host's input folder: Load RGBA -> Refine Alpha -> Connectivity Refine -> Trimap By Erode /
  Dilate -> Trimap Matting -> Matte Metrics, Connectivity Refine -> Quality Gate (Advanced) and
  Pad Foreground -> Save Matting Dataset with the Prompt Template's outputs, and Load Frame
  Folder -> Load Mask Folder -> Video Matte -> Save RGBA Sequence. ``dataset_name`` and
  ``folder_name`` get a suffix per saved file, so two files can run on one host.

Left out of the run, because they feed no output node: Trimap From Alpha (linked from the
refined alpha, its trimap unused), Trimap from Mask, Chroma Key, Composite over Background and
Matte Quality Gate (simple), saved with their widgets only; and the Layer Diffusion nodes
(Apply Layer Diffusion, Load Transparent Decoder, Transparent Decode), which need model weights
and a MODEL / LATENT from a checkpoint. Their values are still checked by the prompt comparison.

Beside ``COMFYUI_DIR`` this needs ``COMFYUI_BROWSER`` and playwright in ``COMFYUI_PYTHON``, as
``test_host_browser_metadata.py`` does (its ``editor_browser`` fixture skips with the reason).
The files were made by a one-off script outside the repository, with the same browser steps.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.test_host_browser_metadata import editor_browser, open_in_editor

__all__ = ["editor_browser"]  # the fixture, re-used from the other editor test

DATA = Path(__file__).resolve().parent / "data"
SAVED_ON = {"comfy080": "0.8.0", "comfy0364": "0.3.64"}
RUN_INPUTS = "ldp_hand_saved"            # LDPLoadRGBA path (a folder, index 1 of 2 files)
CLIP_INPUTS = "ldp_hand_saved_clip"      # LDPLoadFrameFolder / LDPLoadMaskFolder folders
RUNNABLE = {"LDPLoadRGBA", "LDPRefineAlpha", "LDPConnectivityRefine", "LDPTrimapErodeDilate",
            "LDPTrimapMatting", "LDPMatteMetrics", "LDPQualityGate", "LDPPadForeground",
            "LDPPromptTemplate", "LDPSaveDataset", "LDPLoadFrameFolder", "LDPLoadMaskFolder",
            "LDPVideoMatte", "LDPSaveRGBASequence"}

#: What this test reads from the editor once the saved workflow is in: the nodes (type, error
#: flags, widget values) and the prompt the editor would queue.
PROMPT_QUERY = """async () => ({
    nodes: app.graph._nodes.map(node => ({
        id: String(node.id), type: node.type, has_errors: !!node.has_errors,
        placeholder: !!node.last_serialization,
        widgets: (node.widgets || []).map(widget => [widget.name, widget.value])})),
    registered: Object.keys(LiteGraph.registered_node_types),
    prompt: JSON.stringify((await app.graphToPrompt()).output),
    frontend: window.__COMFYUI_FRONTEND_VERSION__ || null,
})"""


def prepare_inputs(input_dir: Path, layerdiffuse_dir: Path) -> None:
    """The files the saved graph names, small so the run is quick on CPU: two 192x192 RGBA
    portraits in ``input/ldp_hand_saved/``, and two 128x128 frames with their masks (the alpha
    thresholded, white = person) in ``input/ldp_hand_saved_clip/{frames,masks}/``."""
    from PIL import Image

    portraits = input_dir / RUN_INPUTS
    frames, masks = (input_dir / CLIP_INPUTS / "frames", input_dir / CLIP_INPUTS / "masks")
    for folder in (portraits, frames, masks):
        folder.mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(("i2i_0_transparent.png", "t2i_0_transparent.png")):
        with Image.open(layerdiffuse_dir / source) as image:
            rgba = image.convert("RGBA")
        rgba.resize((192, 192), Image.LANCZOS).save(portraits / f"portrait_{number}.png")
        small = rgba.resize((128, 128), Image.LANCZOS)
        small.convert("RGB").save(frames / f"frame_{number:03d}.png")
        small.getchannel("A").point(lambda value: 255 if value >= 128 else 0).save(
            masks / f"frame_{number:03d}.png")


def queued_part(prompt: dict, output_types: set[str]) -> dict:
    """The nodes of ``prompt`` that an output node needs (the output nodes and what feeds them)."""
    wanted = [node_id for node_id, node in prompt.items() if node["class_type"] in output_types]
    kept: set[str] = set()
    while wanted:
        node_id = wanted.pop()
        if node_id in kept:
            continue
        kept.add(node_id)
        wanted += [value[0] for value in prompt[node_id]["inputs"].values()
                   if isinstance(value, list) and len(value) == 2]
    return {node_id: json.loads(json.dumps(prompt[node_id])) for node_id in sorted(kept, key=int)}


def declared_defaults(object_info: dict) -> dict:
    """``{node type: {input name: default}}`` of the widgets the host declares."""
    return {node_type: {name: spec[1]["default"]
                        for section in ("required", "optional")
                        for name, spec in info.get("input", {}).get(section, {}).items()
                        if len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]}
            for node_type, info in object_info.items()}


def moved_inputs(before: dict, after: dict, defaults: dict) -> list[str]:
    """Every (node, input) whose value differs between two API prompts, as readable lines.

    An input the saved prompt lacks is a widget added to the pack after the save; the editor
    gives it its default, so it counts as moved only when it holds another value."""
    lines = []
    for node_id in sorted(set(before) | set(after), key=int):
        old, new = before.get(node_id), after.get(node_id)
        if old is None or new is None or old["class_type"] != new["class_type"]:
            lines.append(f"node {node_id}: {old and old['class_type']} before, {new and new['class_type']} after")
            continue
        added = defaults.get(new["class_type"], {})
        for name in sorted(set(old["inputs"]) | set(new["inputs"])):
            missing = "<absent>"
            was, now = old["inputs"].get(name, missing), new["inputs"].get(name, missing)
            if was == missing and name in added and now == added[name]:
                continue
            if was != now:
                lines.append(f"node {node_id} {new['class_type']}.{name}: {was!r} before, {now!r} after")
    return lines


@pytest.mark.parametrize("saved_on", sorted(SAVED_ON))
def test_hand_saved_workflow_loads_keeps_its_values_and_runs(
        saved_on, editor_browser, comfy_host, layerdiffuse_dir):
    if comfy_host.version in SAVED_ON.values() and comfy_host.version != SAVED_ON[saved_on]:
        pytest.skip(f"saved on ComfyUI {SAVED_ON[saved_on]}; this host is {comfy_host.version}")
    workflow = json.loads((DATA / f"hand_saved_{saved_on}_ui.json").read_text(encoding="utf-8"))
    saved_prompt = json.loads((DATA / f"hand_saved_{saved_on}_api.json").read_text(encoding="utf-8"))
    object_info = comfy_host.object_info()
    pack_types = {node_id for node_id, info in object_info.items()
                  if info.get("category", "").startswith("LD-Portrait")}
    saved_types = {node["type"] for node in workflow["nodes"]}
    assert saved_types == pack_types, "the saved workflow holds every LD-Portrait node, once"

    opened = open_in_editor(editor_browser, comfy_host.url, workflow, PROMPT_QUERY)
    opened["prompt"] = json.loads(opened["prompt"])
    context = (f"saved on {SAVED_ON[saved_on]}, opened on host {comfy_host.version}, frontend "
               f"{opened['frontend']}, page errors at start-up {opened['startup_errors']}")
    assert opened["load_errors"] == [], context
    assert sorted((node["id"], node["type"]) for node in opened["nodes"]) == sorted(
        (str(node["id"]), node["type"]) for node in workflow["nodes"]), context
    unregistered = sorted(saved_types - set(opened["registered"]))
    assert not unregistered, f"the editor does not know {unregistered} ({context})"
    flagged = [node for node in opened["nodes"] if node["has_errors"] or node["placeholder"]]
    assert not flagged, f"nodes loaded as placeholders or with errors: {flagged} ({context})"

    moved = moved_inputs(saved_prompt, opened["prompt"], declared_defaults(object_info))
    assert not moved, "inputs differ from the prompt saved before the change:\n" + "\n".join(moved)

    prepare_inputs(comfy_host.input_dir, layerdiffuse_dir)
    output_types = {node_id for node_id, info in object_info.items() if info.get("output_node")}
    graph = queued_part(opened["prompt"], output_types)
    assert {node["class_type"] for node in graph.values()} == RUNNABLE
    for node in graph.values():
        if node["class_type"] == "LDPSaveDataset":
            node["inputs"]["dataset_name"] += f"_{saved_on}"
        if node["class_type"] == "LDPSaveRGBASequence":
            node["inputs"]["folder_name"] += f"_{saved_on}"
    entry = comfy_host.run(graph)
    ran = {graph[node_id]["class_type"] for node_id in entry["outputs"]}
    assert ran == {"LDPMatteMetrics", "LDPSaveDataset", "LDPSaveRGBASequence"}, entry["outputs"]
    dataset = comfy_host.output_dir / f"hand_saved_{saved_on}"
    assert list(dataset.rglob("*.png")), f"Save Matting Dataset wrote no PNG under {dataset}"
    sequence = sorted(path.name for path in (comfy_host.output_dir / f"hand_saved_seq_{saved_on}").glob("*.png"))
    assert sequence == ["frame_000.png", "frame_001.png"], sequence
