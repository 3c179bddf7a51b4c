"""In a real host: the shipped refine-a-folder graph, queued with the editor graph in
``extra_pnginfo`` (as the editor queues it), writes fg PNGs whose ``prompt`` chunk holds the API
graph and whose ``workflow`` chunk holds the editor graph; the meta refers to the stored API
graph, which ``ld-portrait dataset graph`` gives back; with the host's ``--disable-metadata``
no chunk and no graph are written."""
from __future__ import annotations

import io
import json
import os
import shutil
import uuid

import pytest

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.dataset.pngtext import read_text_chunks
from helpers.editor_runs import API_GRAPH, SAVE_NODE, UI_GRAPH, first_fg, refine_folder_graph, run_as_the_editor

CLIENT_ID = "ldp-metadata-test"


def test_fg_png_carries_the_api_and_editor_graphs(comfy_host, layerdiffuse_dir, tmp_path):
    name = f"meta_{uuid.uuid4().hex[:8]}"
    graph = refine_folder_graph(comfy_host, layerdiffuse_dir, name)
    workflow = json.loads(UI_GRAPH.read_text(encoding="utf-8"))
    run_as_the_editor(comfy_host, graph, workflow, CLIENT_ID)
    root = comfy_host.output_dir / name
    fg = first_fg(root)
    texts = read_text_chunks(fg.read_bytes())
    # core SaveImage's chunk too holds the host's is_changed results (NaN: "always run")
    chunk = json.loads(texts["prompt"])
    assert "is_changed" in chunk[SAVE_NODE]
    assert {node_id: {k: v for k, v in node.items() if k != "is_changed"}
            for node_id, node in chunk.items()} == graph
    assert chunk[SAVE_NODE]["class_type"] == "LDPSaveDataset"
    assert json.loads(texts["workflow"]) == workflow
    assert read_text_chunks((fg.parent.parent / "alpha" / fg.name).read_bytes()) == {}
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["dataset", "graph", str(root), fg.stem], stdout=out, stderr=err) == 0, err
    assert json.loads(out.getvalue()) == graph  # as queued: without the host's is_changed


@pytest.fixture
def host_without_metadata(host_with_flags):
    """A second server, started with --disable-metadata."""
    return host_with_flags("--disable-metadata")


@pytest.mark.skipif(os.name == "nt", reason="the flag is added by a shell wrapper")
def test_disable_metadata_writes_no_chunk(host_without_metadata, layerdiffuse_dir):
    host = host_without_metadata
    graph = refine_folder_graph(host, layerdiffuse_dir, "no_metadata")
    run_as_the_editor(host, graph, json.loads(UI_GRAPH.read_text(encoding="utf-8")), CLIENT_ID)
    root = host.output_dir / "no_metadata"
    assert read_text_chunks(first_fg(root).read_bytes()) == {}
    assert not (root / "provenance").exists()


def test_dataset_graph_of_a_queued_sample_queues_again_to_the_same_sample(
        comfy_host, layerdiffuse_dir, tmp_path):
    from comfyui_ld_portrait.cli import queue as serverqueue

    folder = "ldp_metadata_queue_inputs"
    (comfy_host.input_dir / folder).mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(("i2i_0_transparent.png", "t2i_0_transparent.png")):
        shutil.copyfile(layerdiffuse_dir / source,
                        comfy_host.input_dir / folder / f"{number:02d}.png")
    graph = json.loads(API_GRAPH.read_text(encoding="utf-8"))
    graph["3"]["inputs"]["path"] = folder
    graph[SAVE_NODE]["inputs"]["keep_rejected"] = True
    workflow = tmp_path / "refine_api.json"
    workflow.write_text(json.dumps(graph), encoding="utf-8")

    def queue(path, name, *options):
        out, err = io.StringIO(), io.StringIO()
        code = serverqueue.main([str(path), "--server", comfy_host.url, "--dataset",
                                 str(comfy_host.output_dir / name), "--dataset-name", name,
                                 "--poll", "0.2", "--timeout", "60", *options],
                                stdout=out, stderr=err)
        assert code == 0, out.getvalue() + err.getvalue()

    queue(workflow, "ldp_first", "--range", "1:2", "--allow-no-template")
    first = comfy_host.output_dir / "ldp_first"
    out, err = io.StringIO(), io.StringIO()
    again = tmp_path / "again.json"
    assert cli.main(["dataset", "graph", str(first), "1", "-o", str(again)],
                    stdout=out, stderr=err) == 0, err.getvalue()
    line = next(text for text in out.getvalue().splitlines() if "ld-portrait queue" in text)
    options = line.split(str(again), 1)[1].split()
    options = options[:options.index("--dataset-name")]
    assert options[:4] == ["--start", "1", "--count", "1"], line
    queue(again, "ldp_second", *options)
    second = comfy_host.output_dir / "ldp_second"
    metas = []
    for root in (first, second):
        found = [*root.glob("meta/000001.json"), *root.glob("rejected/meta/000001.json")]
        assert len(found) == 1, f"{root} has no sample 000001"
        metas.append(json.loads(found[0].read_text(encoding="utf-8")))
    assert metas[0]["sample_index"] == metas[1]["sample_index"] == 1
    assert metas[0]["refinement"] == metas[1]["refinement"]  # the same input, the same matte
    assert metas[0]["status"] == metas[1]["status"]
    alpha = metas[0]["files"]["alpha"]
    assert (first / alpha).read_bytes() == (second / alpha).read_bytes()
