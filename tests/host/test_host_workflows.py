"""Every shipped API workflow passes the host's own validation.

A user puts model files where the workflow's notes say; here tiny placeholder files stand in
for them, because validation only checks that a COMBO value is one of the files the host
lists. Input images a workflow names are provided from the real Layer Diffusion test images.
A workflow that needs no model file is CPU-runnable and must also execute successfully; one
that names model files is queued (validation passed) and then cancelled, since placeholders
cannot be loaded.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows" / "api"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# Where a loader input looks for its files (the host's models/<folder>). Our own loaders use
# models/layer_model (see docs/layerdiffusion.md). Add an entry here when a workflow uses another loader.
MODEL_FOLDERS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
}
LDP_MODEL_FOLDER = "layer_model"


def test_workflows_are_shipped():
    assert WORKFLOWS, f"no API workflow in {WORKFLOW_DIR}; the pack ships at least one"


def _model_folder(class_type: str, input_name: str) -> str:
    if class_type.startswith("LDP"):
        return LDP_MODEL_FOLDER
    try:
        return MODEL_FOLDERS[(class_type, input_name)]
    except KeyError:
        raise AssertionError(
            f"{class_type}.{input_name} names a model file, but this test does not know the "
            "loader's models/ folder: add it to MODEL_FOLDERS") from None


def _provide_inputs(comfy_host, graph: dict, object_info: dict, layerdiffuse_dir: Path) -> list[Path]:
    """Create what the graph names and the host must find: model placeholders, input images.

    Returns the placeholder model files created.
    """
    placeholders = []
    for node_id, node in graph.items():
        class_type = node["class_type"]
        assert class_type in object_info, f"node {node_id}: the host has no node type {class_type}"
        declared = {**object_info[class_type]["input"].get("required", {}),
                    **object_info[class_type]["input"].get("optional", {})}
        for name, value in node.get("inputs", {}).items():
            if not isinstance(value, str) or name not in declared:
                continue
            kind = declared[name][0]
            if isinstance(kind, list) and value not in kind and value.lower().endswith(MODEL_SUFFIXES):
                target = comfy_host.models_dir / _model_folder(class_type, name) / value
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"")  # validation only needs the name listed
                    placeholders.append(target)
            elif class_type == "LoadImage" and name == "image" and value not in kind:
                target = comfy_host.input_dir / value
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(layerdiffuse_dir / "i2i_0_transparent.png", target)
            elif class_type == "LDPLoadRGBA" and name == "path" and value and not Path(value).is_absolute():
                target = comfy_host.input_dir / value
                if target.exists():
                    continue
                if value.lower().endswith(IMAGE_SUFFIXES):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(layerdiffuse_dir / "i2i_0_transparent.png", target)
                else:  # a folder of RGBA portraits
                    target.mkdir(parents=True, exist_ok=True)
                    for source in ("i2i_0_transparent.png", "t2i_0_transparent.png"):
                        shutil.copyfile(layerdiffuse_dir / source, target / source)
            elif class_type in ("LDPLoadFrameFolder", "LDPLoadMaskFolder") and name == "folder" \
                    and not Path(value).is_absolute() and not (comfy_host.input_dir / value).exists():
                # A tiny clip: two frames / two masks with the same names (the video workflow).
                import numpy as np
                from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic

                for index in range(2):
                    picture = np.zeros((48, 48), np.float32)
                    picture[12:36, 14 + index:34 + index] = 1.0
                    if class_type == "LDPLoadFrameFolder":
                        picture = np.dstack([picture * 0.8, 0.3 + 0.0 * picture, 1.0 - picture])
                    write_png_atomic(comfy_host.input_dir / value / f"frame_{index:04d}.png", picture)
    return placeholders


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[path.stem for path in WORKFLOWS])
def test_shipped_workflow_passes_host_validation(comfy_host, layerdiffuse_dir, workflow):
    graph = json.loads(workflow.read_text(encoding="utf-8"))
    assert isinstance(graph, dict) and graph and all("class_type" in node for node in graph.values()), (
        f"{workflow.name} is not an API-format graph (node id -> {{class_type, inputs}})")
    object_info = comfy_host.object_info()
    placeholders = _provide_inputs(comfy_host, graph, object_info, layerdiffuse_dir)

    status, response = comfy_host.submit(graph)
    assert status == 200 and not response.get("node_errors"), (
        f"{workflow.name} failed the host's validation:\n{json.dumps(response, indent=1)[:4000]}")
    prompt_id = response["prompt_id"]
    if placeholders:
        # Validation passed; the placeholders cannot be loaded, so take the prompt off the queue
        # (or interrupt it if it already started) and wait until the host is idle again.
        comfy_host.request("POST", "/queue", {"delete": [prompt_id]})
        comfy_host.request("POST", "/interrupt", {})
        entry = comfy_host.wait(prompt_id, timeout=60) if _in_history_or_running(comfy_host, prompt_id) else None
        if entry is not None:
            assert entry["status"]["status_str"] in ("success", "error")
        for path in placeholders:
            path.unlink()
    else:
        entry = comfy_host.wait(prompt_id, timeout=180)
        assert entry["status"]["status_str"] == "success", (
            f"{workflow.name} needs no model file but failed in the host:\n"
            + json.dumps(entry["status"], indent=1)[:4000])


def _in_history_or_running(comfy_host, prompt_id: str) -> bool:
    """False when the prompt was deleted from the queue before it started."""
    history = comfy_host.get_json(f"/history/{prompt_id}")
    if prompt_id in history:
        return True
    queue = comfy_host.get_json("/queue")
    return any(item[1] == prompt_id for item in queue.get("queue_running", []) + queue.get("queue_pending", []))
