"""The shipped matting workflows are wired as their notes say (API format)."""
import json
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "workflows" / "api"


def _graph(name):
    return json.loads((API / f"{name}.json").read_text(encoding="utf-8"))


def _only(graph, class_type):
    found = [(key, node) for key, node in graph.items() if node["class_type"] == class_type]
    assert len(found) == 1, (class_type, len(found))
    return found[0]


def _source(graph, node, name):
    key, slot = node["inputs"][name]
    return graph[key]["class_type"], slot


def test_green_screen_graph_keys_plain_sdxl_output_into_its_own_dataset():
    graph = _graph("ld_portrait_greenscreen_key")
    assert not any(n["class_type"].startswith("LDPLayerDiffusion") or
                   n["class_type"].startswith("LDPTransparent") for n in graph.values())
    _, sampler = _only(graph, "KSampler")
    assert _source(graph, sampler, "model") == ("CheckpointLoaderSimple", 0)
    _, key = _only(graph, "LDPChromaKey")
    assert _source(graph, key, "image") == ("VAEDecode", 0)
    _, save = _only(graph, "LDPSaveDataset")
    assert _source(graph, save, "foreground") == ("LDPChromaKey", 0)
    assert _source(graph, save, "alpha") == ("LDPChromaKey", 1)
    assert _source(graph, save, "sample_index") == ("LDPPromptTemplate", 4)
    assert save["inputs"]["dataset_name"] != "ld_portrait_20k"
    _, template = _only(graph, "LDPPromptTemplate")
    assert template["inputs"]["preset"] == "custom"
    assert "green screen" in template["inputs"]["template"]


def test_video_graph_matches_masks_and_output_names_to_the_frames():
    graph = _graph("ld_portrait_video_matte")
    _, masks = _only(graph, "LDPLoadMaskFolder")
    assert _source(graph, masks, "names") == ("LDPLoadFrameFolder", 1)
    _, matte = _only(graph, "LDPVideoMatte")
    assert _source(graph, matte, "frames") == ("LDPLoadFrameFolder", 0)
    assert _source(graph, matte, "masks") == ("LDPLoadMaskFolder", 0)
    _, save = _only(graph, "LDPSaveRGBASequence")
    assert _source(graph, save, "rgba") == ("LDPVideoMatte", 0)
    assert _source(graph, save, "names") == ("LDPLoadFrameFolder", 1)
