"""LDPSaveDataset and the graph that made its samples: ComfyUI's hidden PROMPT / EXTRA_PNGINFO
inputs in the fg PNG text chunks (as core SaveImage writes them), the API graph stored once per
dataset and referenced from meta, and the host's --disable-metadata."""
import hashlib
import json
import sys
import types

import numpy as np
import pytest
import torch

from comfyui_ld_portrait.dataset import verify
from comfyui_ld_portrait.dataset.pngtext import iter_chunks, read_text_chunks
from comfyui_ld_portrait.dataset.provenance import read_provenance
from comfyui_ld_portrait.nodes.dataset import LDPSaveDataset, host_disables_metadata

H, W = 24, 20
GRAPH = {"5": {"class_type": "LDPPromptTemplate", "inputs": {"index": 3, "seed": 11}},
         "9": {"class_type": "LDPSaveDataset",
               "inputs": {"dataset_name": "ds", "sample_index": ["5", 3],
                          "foreground": ["7", 0], "alpha": ["8", 0]}}}
WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 9, "type": "LDPSaveDataset"}], "links": [],
            "version": 0.4}


def _save(out, count=2, **kwargs):
    rng = np.random.default_rng(0)
    fg = torch.from_numpy(rng.uniform(0, 1, (count, H, W, 3)).astype(np.float32))
    alpha = torch.zeros(count, H, W)
    alpha[:, 4:20, 4:16] = 1.0
    kwargs.setdefault("dataset_name", "ds")
    return LDPSaveDataset().save(fg, alpha, output_root=str(out), **kwargs)


def _texts(path):
    return read_text_chunks(path.read_bytes())


@pytest.fixture
def host_args(monkeypatch):
    """A stand-in for a running host's ``comfy.cli_args`` (returns its ``args``)."""
    args = types.SimpleNamespace(disable_metadata=False)
    comfy = types.ModuleType("comfy")
    cli_args = types.ModuleType("comfy.cli_args")
    cli_args.args = args
    comfy.cli_args = cli_args
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.cli_args", cli_args)
    return args


def test_hidden_inputs_are_declared_as_core_save_image_declares_them():
    hidden = LDPSaveDataset.INPUT_TYPES()["hidden"]
    assert sorted(hidden.values()) == ["EXTRA_PNGINFO", "PROMPT"]
    # the positive-prompt socket keeps its name: the API graph arrives under another one
    assert hidden["api_graph"] == "PROMPT" and hidden["extra_pnginfo"] == "EXTRA_PNGINFO"
    assert LDPSaveDataset.INPUT_TYPES()["optional"]["prompt"][0] == "STRING"


def test_fg_pngs_carry_prompt_and_workflow_and_alphas_stay_plain(tmp_path):
    _save(tmp_path, api_graph=GRAPH, extra_pnginfo={"workflow": WORKFLOW, "extra": [1, 2]},
          alpha_bits="16", raw_alpha=torch.ones(2, H, W))
    root = tmp_path / "ds"
    for sample_id in ("000000", "000001"):
        texts = _texts(root / "fg" / f"{sample_id}.png")
        assert texts["prompt"] == json.dumps(GRAPH)  # what core SaveImage writes
        assert json.loads(texts["workflow"]) == WORKFLOW
        assert json.loads(texts["extra"]) == [1, 2]
        for kind in ("alpha", "raw_alpha"):
            png = (root / kind / f"{sample_id}.png").read_bytes()
            assert read_text_chunks(png) == {}
            assert not any(t in (b"tEXt", b"iTXt", b"zTXt") for t, _, _ in iter_chunks(png))
    assert verify(root).ok


def test_pil_opens_the_fg_png_with_the_graph(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    _save(tmp_path, count=1, api_graph=GRAPH, extra_pnginfo={"workflow": WORKFLOW})
    with pil.open(tmp_path / "ds" / "fg" / "000000.png") as image:
        assert json.loads(image.text["prompt"]) == GRAPH
        assert json.loads(image.text["workflow"]) == WORKFLOW


def test_meta_references_one_stored_copy_of_the_api_graph_and_the_pack_version(tmp_path):
    _save(tmp_path, count=3, api_graph=GRAPH, extra_pnginfo={"workflow": WORKFLOW})
    root = tmp_path / "ds"
    metas = [json.loads((root / "meta" / f"00000{i}.json").read_text()) for i in range(3)]
    references = {json.dumps(meta["provenance"], sort_keys=True) for meta in metas}
    assert len(references) == 1
    reference = metas[0]["provenance"]
    stored = root / reference["file"]
    assert reference["kind"] == "comfyui_api_graph"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == reference["sha256"]
    assert stored.name == f"{reference['sha256']}.json"
    assert sorted(p.name for p in (root / "provenance").iterdir()) == [stored.name]
    assert read_provenance(root, reference) == ("comfyui_api_graph", GRAPH)
    assert metas[0]["tool"]["version"] and metas[0]["tool"]["node"] == "LDPSaveDataset"
    # a second batch of the same graph adds no copy; another graph adds one
    _save(tmp_path, count=1, sample_index=3, api_graph=GRAPH)
    other = {**GRAPH, "5": {"class_type": "LDPPromptTemplate", "inputs": {"index": 4, "seed": 11}}}
    _save(tmp_path, count=1, sample_index=4, api_graph=other)
    assert len(list((root / "provenance").iterdir())) == 2
    assert not [p for p in (root / "provenance").iterdir() if p.name.startswith(".")]


def test_rejected_samples_keep_the_graph_too(tmp_path):
    _save(tmp_path, count=1, keep=False, keep_rejected=True, api_graph=GRAPH,
          extra_pnginfo={"workflow": WORKFLOW})
    root = tmp_path / "ds" / "rejected"
    assert json.loads(_texts(root / "fg" / "000000.png")["prompt"]) == GRAPH
    assert json.loads((root / "meta" / "000000.json").read_text())["provenance"]["sha256"]


def test_without_the_hidden_inputs_nothing_is_added(tmp_path):
    _save(tmp_path, count=1)
    root = tmp_path / "ds"
    assert _texts(root / "fg" / "000000.png") == {}
    assert "provenance" not in json.loads((root / "meta" / "000000.json").read_text())
    assert not (root / "provenance").exists()


def test_host_disable_metadata_writes_no_chunk_and_no_graph(tmp_path, host_args):
    assert host_disables_metadata() is False
    _save(tmp_path, count=1, dataset_name="on", api_graph=GRAPH,
          extra_pnginfo={"workflow": WORKFLOW})
    assert set(_texts(tmp_path / "on" / "fg" / "000000.png")) == {"prompt", "workflow"}
    host_args.disable_metadata = True
    assert host_disables_metadata() is True
    _save(tmp_path, count=1, dataset_name="off", api_graph=GRAPH,
          extra_pnginfo={"workflow": WORKFLOW})
    root = tmp_path / "off"
    assert _texts(root / "fg" / "000000.png") == {}
    assert "provenance" not in json.loads((root / "meta" / "000000.json").read_text())
    assert not (root / "provenance").exists()


def test_outside_a_host_the_host_arguments_are_not_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "comfy.cli_args", raising=False)
    assert host_disables_metadata() is False
    assert "comfy.cli_args" not in sys.modules


def test_an_extra_key_png_cannot_hold_is_reported_not_fatal(tmp_path):
    summary = _save(tmp_path, count=1, api_graph=GRAPH,
                    extra_pnginfo={"workflow": WORKFLOW, "bad\0key": 1})["result"][0]
    assert "not written into the fg PNGs" in summary and "bad\\x00key" in summary
    assert set(_texts(tmp_path / "ds" / "fg" / "000000.png")) == {"prompt", "workflow"}


def test_the_stored_graph_leaves_out_the_hosts_execution_state(tmp_path):
    # A host records IS_CHANGED results in the graph it runs (NaN = always run) and trusts them
    # when a client sends them: a stored graph with them could be served from the cache.
    ran = {node_id: dict(node) for node_id, node in GRAPH.items()}
    ran["9"]["is_changed"] = [float("nan")]
    _save(tmp_path, count=1, api_graph=ran)
    root = tmp_path / "ds"
    chunk = _texts(root / "fg" / "000000.png")["prompt"]
    assert chunk == json.dumps(ran) and "NaN" in chunk  # the chunk is core SaveImage's
    reference = json.loads((root / "meta" / "000000.json").read_text())["provenance"]
    assert read_provenance(root, reference)[1] == GRAPH
