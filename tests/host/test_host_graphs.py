"""Graphs built here run in the real host: single image, batch, host cache, bad graphs.

The host's results are compared with the library run in this process on the same real
Layer Diffusion images: the host must move tensors through our nodes (and core's batching and
saving) without changing them. SaveImage writes ``uint8(clip(255 * x))``, so the expected
pictures are quantised the same way and may differ by one step at most.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from helpers.host_images import assert_within_one_step, read_rgb, saved_8bit

from comfyui_ld_portrait.dataset.imagefiles import read_rgba
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.base.padding import pad_foreground


def _single_graph(path: str, prefix: str) -> dict:
    """LDPLoadRGBA -> LDPConnectivityRefine -> LDPPadForeground -> SaveImage (+ alpha, error map)."""
    return {
        "1": {"class_type": "LDPLoadRGBA", "inputs": {"path": path, "index": 0}},
        "2": {"class_type": "LDPConnectivityRefine", "inputs": {"alpha": ["1", 1], "image": ["1", 0]}},
        "3": {"class_type": "LDPPadForeground", "inputs": {"image": ["1", 0], "alpha": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"{prefix}_fg"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"{prefix}_alpha"}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["2", 2], "filename_prefix": f"{prefix}_errors"}},
    }


def _batch_graph(folder: str, prefix: str) -> dict:
    """Three RGBA loads joined with core ImageBatch, split with core SplitImageWithAlpha (whose
    MASK is 1 - alpha, hence invert=True), refined, padded and saved as one batch."""
    return {
        "1": {"class_type": "LDPLoadRGBA", "inputs": {"path": folder, "index": 0}},
        "2": {"class_type": "LDPLoadRGBA", "inputs": {"path": folder, "index": 1}},
        "3": {"class_type": "LDPLoadRGBA", "inputs": {"path": folder, "index": 2}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 2], "image2": ["2", 2]}},
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["4", 0], "image2": ["3", 2]}},
        "6": {"class_type": "SplitImageWithAlpha", "inputs": {"image": ["5", 0]}},
        "7": {"class_type": "LDPConnectivityRefine", "inputs": {"alpha": ["6", 1], "invert": True}},
        "8": {"class_type": "LDPPadForeground", "inputs": {"image": ["6", 0], "alpha": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": f"{prefix}_fg"}},
        "10": {"class_type": "MaskToImage", "inputs": {"mask": ["7", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": f"{prefix}_alpha"}},
    }


@pytest.fixture(scope="module")
def single_expected(host_images):
    rgb, alpha = read_rgba(host_images["single"])
    refined = refine_alpha(alpha).alpha
    return {"alpha": saved_8bit(refined), "fg": saved_8bit(pad_foreground(rgb, refined))}


def test_refine_graph_runs_end_to_end_and_matches_library(comfy_host, host_images, single_expected):
    offset = comfy_host.log_size()
    entry = comfy_host.run(_single_graph(host_images["single_rel"], "ldp_single"))

    (fg_file,) = comfy_host.output_files(entry, "4")
    (alpha_file,) = comfy_host.output_files(entry, "6")
    (errors_file,) = comfy_host.output_files(entry, "7")
    assert_within_one_step(read_rgb(fg_file), single_expected["fg"], "padded foreground")
    alpha_picture = read_rgb(alpha_file)
    assert (alpha_picture == alpha_picture[..., :1]).all(), "the alpha picture should be grey"
    assert_within_one_step(alpha_picture[..., 0], single_expected["alpha"], "refined alpha")
    errors = read_rgb(errors_file)
    assert errors.shape == single_expected["fg"].shape and errors.std() > 0

    log = comfy_host.log_since(offset)
    assert "Traceback" not in log, log[-4000:]


def test_second_queue_is_served_from_the_host_cache(comfy_host, host_images, single_expected):
    graph = _single_graph(host_images["single_rel"], "ldp_cache")
    first = comfy_host.run(graph)
    second = comfy_host.run(copy.deepcopy(graph))
    # Nothing changed: the host re-runs none of our nodes and still reports the outputs.
    assert {"1", "2", "3"} <= comfy_host.cached_nodes(second), second["status"]
    for node in ("4", "6"):
        files = comfy_host.output_files(second, node)
        assert files == comfy_host.output_files(first, node) and all(path.is_file() for path in files)
    (alpha_file,) = comfy_host.output_files(second, "6")
    assert_within_one_step(read_rgb(alpha_file)[..., 0], single_expected["alpha"], "cached alpha")

    # A changed widget re-runs refinement (and what follows) but not the loader.
    changed = copy.deepcopy(graph)
    changed["2"]["inputs"]["remove_debris"] = False
    changed["2"]["inputs"]["fix_interior"] = False
    third = comfy_host.run(changed)
    cached = comfy_host.cached_nodes(third)
    assert "1" in cached and "2" not in cached and "3" not in cached, third["status"]
    rgb, alpha = read_rgba(host_images["single"])
    expected = saved_8bit(refine_alpha(alpha, remove_debris=False, fix_interior=False).alpha)
    (alpha_file,) = comfy_host.output_files(third, "6")
    assert_within_one_step(read_rgb(alpha_file)[..., 0], expected, "re-run alpha")


def test_batch_of_three_images(comfy_host, host_images):
    entry = comfy_host.run(_batch_graph(host_images["batch_rel"], "ldp_batch"), timeout=180)
    fg_files = comfy_host.output_files(entry, "9")
    alpha_files = comfy_host.output_files(entry, "11")
    assert len(fg_files) == len(alpha_files) == 3
    for source, fg_file, alpha_file in zip(host_images["batch_files"], fg_files, alpha_files):
        rgb, alpha = read_rgba(source)
        # SplitImageWithAlpha gives 1 - alpha and the node inverts it back, in float32 as here.
        alpha = (np.float32(1.0) - (np.float32(1.0) - alpha)).astype(np.float32)
        refined = refine_alpha(alpha).alpha
        assert_within_one_step(read_rgb(alpha_file)[..., 0], saved_8bit(refined), f"{source.name} alpha")
        assert_within_one_step(read_rgb(fg_file), saved_8bit(pad_foreground(rgb, refined)), f"{source.name} foreground")


# --- bad graphs: the host's validation answers 400 and names our node and input -------------
# The host runs whatever outputs still validate (HTTP 200 plus node_errors), so each bad graph
# has a single output that depends on every node: the whole prompt must be refused.

def _bad_graph(host_images) -> dict:
    graph = _single_graph(host_images["single_rel"], "ldp_bad")
    for node in ("5", "6", "7"):
        del graph[node]
    return graph


def _errors_for(comfy_host, graph: dict, node_id: str) -> list[dict]:
    status, response = comfy_host.submit(graph)
    assert status == 400, f"expected the host to refuse the graph, got {status}: {response}"
    node_errors = response.get("node_errors", {})
    assert node_id in node_errors, f"node {node_id} not named in {list(node_errors)}: {response}"
    assert node_errors[node_id]["class_type"] == graph[node_id]["class_type"]
    return node_errors[node_id]["errors"]


def _assert_names_input(errors: list[dict], error_type: str, input_name: str) -> None:
    matching = [error for error in errors if error["type"] == error_type]
    assert matching, f"no {error_type} error in {errors}"
    assert any(error.get("extra_info", {}).get("input_name") == input_name and input_name in
               f"{error.get('message', '')} {error.get('details', '')}" for error in matching), matching


def test_missing_required_input_is_refused(comfy_host, host_images):
    graph = _bad_graph(host_images)
    del graph["3"]["inputs"]["alpha"]
    _assert_names_input(_errors_for(comfy_host, graph, "3"), "required_input_missing", "alpha")


def test_wrong_type_link_is_refused(comfy_host, host_images):
    graph = _bad_graph(host_images)
    graph["2"]["inputs"]["alpha"] = ["1", 0]  # IMAGE into a MASK socket
    _assert_names_input(_errors_for(comfy_host, graph, "2"), "return_type_mismatch", "alpha")


@pytest.mark.parametrize("name, value, error_type", [
    ("reach", -5.0, "value_smaller_than_min"),
    ("see_through_level", 1.5, "value_bigger_than_max"),
])
def test_out_of_range_value_is_refused(comfy_host, host_images, name, value, error_type):
    graph = _bad_graph(host_images)
    graph["2"]["inputs"][name] = value
    _assert_names_input(_errors_for(comfy_host, graph, "2"), error_type, name)


def test_unknown_choice_is_refused(comfy_host, host_images):
    """Refused before the graph runs: by the host where it checks V3 combos (0.8.0), by the
    node's own validate_inputs where it does not (0.3.64, nodes/_schema.py)."""
    graph = _bad_graph(host_images)
    graph["1"]["inputs"]["out_of_range"] = "clamp"
    error_type = "custom_validation_failed" if comfy_host.version.startswith("0.3.") else "value_not_in_list"
    _assert_names_input(_errors_for(comfy_host, graph, "1"), error_type, "out_of_range")


def test_runtime_error_names_the_file(comfy_host):
    """A graph that validates but cannot run reports our clear message through the host."""
    graph = _single_graph("ldp_no_such_folder/none.png", "ldp_missing")
    status, response = comfy_host.submit(graph)
    assert status == 200, response
    entry = comfy_host.wait(response["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["node_type"] == "LDPLoadRGBA" and str(errors[0]["node_id"]) == "1"
    assert "no such file or folder" in errors[0]["exception_message"]
    assert "none.png" in errors[0]["exception_message"]


def test_prompt_template_and_quality_gate_run_in_host(comfy_host, host_images):
    """The nodes without image outputs run too; core PreviewAny shows their STRING results,
    which must equal what the same nodes return in this process."""
    import torch

    from comfyui_ld_portrait.nodes.matte import LDPConnectivityRefine, LDPQualityGate
    from comfyui_ld_portrait.nodes.prompt import LDPPromptTemplate

    template_inputs = {name: spec[1]["default"]
                       for name, spec in LDPPromptTemplate.INPUT_TYPES()["required"].items()}
    template_inputs.update(index=7, seed=3, mode="enumerate")
    graph = {
        "1": {"class_type": "LDPLoadRGBA", "inputs": {"path": host_images["single_rel"], "index": 0}},
        "2": {"class_type": "LDPConnectivityRefine", "inputs": {"alpha": ["1", 1]}},
        "3": {"class_type": "LDPQualityGate",
              "inputs": {"alpha": ["2", 0], "raw_alpha": ["1", 1], "changed": ["2", 1],
                         "uncertain": ["2", 4]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "6": {"class_type": "LDPPromptTemplate", "inputs": template_inputs},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["6", 2]}},
    }
    entry = comfy_host.run(graph)
    shown = {node: entry["outputs"][node]["text"][0] for node in ("4", "5", "7", "8")}

    _, alpha = read_rgba(host_images["single"])
    raw = torch.from_numpy(alpha)[None]
    refined, changed, _, _, uncertain = LDPConnectivityRefine().refine(raw)
    keep, _, _, verdict = LDPQualityGate().judge(refined, raw_alpha=raw, changed=changed, uncertain=uncertain)
    assert json.loads(verdict)[0]["measures"]["uncertain_fraction"] is not None
    assert shown["4"] == verdict
    assert shown["5"] == str(keep)
    prompt, _, attributes, _, _ = LDPPromptTemplate().render(**template_inputs)
    assert shown["7"] == prompt and prompt.strip()
    assert shown["8"] == attributes and json.loads(attributes)


def test_deprecated_trimap_alias_still_runs_as_its_replacement(comfy_host, host_images):
    """A saved graph with the deprecated Trimap from Mask still validates and runs in the host,
    and makes the trimap of Trimap By Erode / Dilate with erode = dilate = band, unknown 0.5:
    Matte Metrics (whole protocol) finds no difference between the two."""
    graph = {
        "1": {"class_type": "LDPLoadRGBA", "inputs": {"path": host_images["single_rel"], "index": 0}},
        "2": {"class_type": "LDPTrimapFromMask", "inputs": {"mask": ["1", 1], "band": 12, "invert": False}},
        "3": {"class_type": "LDPTrimapErodeDilate",
              "inputs": {"mask": ["1", 1], "erode": 12.0, "dilate": 12.0, "invert": False, "unknown": "0.5"}},
        "4": {"class_type": "LDPMatteMetrics",
              "inputs": {"alpha": ["2", 0], "reference": ["3", 0], "protocol": "whole", "invert": False}},
    }
    report = comfy_host.run(graph)["outputs"]["4"]["text"][0]
    values = [float(value) for value in report.splitlines()[2].split()[1:]]
    assert len(values) == 5 and all(value == 0.0 for value in values), report
