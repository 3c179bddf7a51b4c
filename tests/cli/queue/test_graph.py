"""cli/queue/graph.py: reading, checking and rewriting API-format workflow graphs."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comfyui_ld_portrait.cli import queue as sq
from comfyui_ld_portrait.prompting import sample_seed

from helpers.queue_runs import DATASET, GRAPH


def test_rewrite_sets_index_and_seeds_and_leaves_everything_else_alone():
    original = copy.deepcopy(GRAPH)
    graph, changes = sq.rewrite_graph(GRAPH, 41, base_seed=5)
    assert GRAPH == original  # the input graph is not modified
    assert graph["2"]["inputs"]["index"] == 41 and graph["2"]["inputs"]["seed"] == 5
    assert graph["9"]["inputs"]["sample_index"] == 41
    assert graph["9"]["inputs"]["dataset_name"] == DATASET  # kept without dataset_name=
    assert graph["6"]["inputs"]["seed"] == sq.job_seed(5, 41) != 123
    assert graph["7"]["inputs"]["noise_seed"] == ["2", 3]  # linked: untouched
    assert graph["9"]["inputs"]["seed"] == ["2", 3]
    # Everything else is identical.
    expected = copy.deepcopy(GRAPH)
    expected["2"]["inputs"].update(index=41, seed=5)
    expected["9"]["inputs"]["sample_index"] = 41
    expected["6"]["inputs"]["seed"] = sq.job_seed(5, 41)
    assert graph == expected
    assert {(c.node_id, c.input_name) for c in changes} == {
        ("2", "index"), ("2", "seed"), ("9", "sample_index"), ("6", "seed")}
    assert "node 6 (KSampler): seed 123 ->" in "\n".join(map(str, changes))


def test_rewrite_options_and_seed_derivation():
    graph, _ = sq.rewrite_graph(GRAPH, 3, base_seed=9, keep_sampler_seed=True,
                                dataset_name="other")
    assert graph["6"]["inputs"]["seed"] == 123
    assert graph["9"]["inputs"]["dataset_name"] == "other"
    seeds = {sq.job_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**53 for s in seeds)
    assert sq.job_seed(0, 1) != sq.job_seed(1, 0)  # neighbouring base seeds do not overlap
    # The seed the template node outputs for the sample, so literal and wired samplers agree.
    assert sq.job_seed(7, 3) == sample_seed(7, 3)
    no_template = {k: v for k, v in GRAPH.items() if k != "2"}
    with pytest.raises(sq.WorkflowError, match="no LDPPromptTemplate node"):
        sq.rewrite_graph(no_template, 0, base_seed=0)
    graph, _ = sq.rewrite_graph(no_template, 4, base_seed=0, allow_no_template=True)
    assert graph["9"]["inputs"]["sample_index"] == 4
    for bad in (-1, 2**53, True, 1.0):
        with pytest.raises(ValueError, match="index"):
            sq.rewrite_graph(GRAPH, bad, base_seed=0)
    graph, _ = sq.rewrite_graph(GRAPH, 2**53 - 1, base_seed=0)
    assert graph["9"]["inputs"]["sample_index"] == 2**53 - 1


def test_load_workflow_refuses_ui_format_and_non_json(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"last_node_id": 3, "nodes": [{"id": 1}], "links": []}))
    with pytest.raises(sq.WorkflowError, match="UI-format.*Export \\(API\\)"):
        sq.load_workflow(ui)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(sq.WorkflowError, match="not JSON .*line 1"):
        sq.load_workflow(bad)
    with pytest.raises(sq.WorkflowError, match="does not exist"):
        sq.load_workflow(tmp_path / "missing.json")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"1": {"inputs": {}}}))
    with pytest.raises(sq.WorkflowError, match="node '1' has no 'class_type'"):
        sq.load_workflow(odd)
    wrapped = tmp_path / "request.json"
    wrapped.write_text(json.dumps({"prompt": GRAPH, "client_id": "x"}))
    assert sq.load_workflow(wrapped) == GRAPH


@pytest.mark.parametrize("depth", [200, 100_000])
def test_deeply_nested_workflow_gives_a_clear_error(tmp_path, depth):
    # 200 levels: the JSON decoder copes, but copying or sending the graph would not;
    # 100000 levels: the decoder itself raises RecursionError.
    nested = "[" * depth + "]" * depth
    path = tmp_path / "deep.json"
    path.write_text('{"1": {"class_type": "KSampler", "inputs": {"seed": ' + nested + "}}}")
    with pytest.raises(sq.WorkflowError, match=f"nested more than {sq.MAX_NESTING} levels"):
        sq.load_workflow(path)


def test_check_api_graph_refuses_deep_data_given_directly():
    value: list = []
    for _ in range(sq.MAX_NESTING + 5):
        value = [value]
    graph = {"1": {"class_type": "KSampler", "inputs": {"seed": value}}}
    with pytest.raises(sq.WorkflowError, match="nested more than"):
        sq.check_api_graph(graph)
    with pytest.raises(sq.WorkflowError, match="nested more than"):
        sq.check_api_graph({"prompt": graph})
    # A link list (four levels) is fine.
    assert sq.check_api_graph(GRAPH) is GRAPH


def test_counter_feeding_the_sample_index_is_set_instead_of_the_link():
    graph = {
        "1": {"class_type": "PrimitiveInt", "inputs": {"value": 0}},
        "2": {"class_type": "LDPLoadRGBA", "inputs": {"path": "in", "index": ["1", 0]}},
        "3": {"class_type": "LDPSaveDataset", "inputs": {"sample_index": ["1", 0],
                                                         "dataset_name": "d"}},
    }
    new_graph, changes = sq.rewrite_graph(graph, 7, base_seed=0, allow_no_template=True)
    assert new_graph["1"]["inputs"]["value"] == 7
    assert new_graph["2"]["inputs"]["index"] == ["1", 0]
    assert new_graph["3"]["inputs"]["sample_index"] == ["1", 0]
    assert graph["1"]["inputs"]["value"] == 0  # the original is untouched
    assert [(c.node_id, c.input_name) for c in changes] == [("1", "value")]


def test_shipped_refine_workflow_walks_the_folder_under_the_queue():
    path = Path(__file__).resolve().parents[3] / "workflows" / "api" / \
        "ld_portrait_refine_folder.json"
    graph = json.loads(path.read_text())
    new_graph, _ = sq.rewrite_graph(graph, 5, base_seed=0, allow_no_template=True)
    loaders = [n for n in new_graph.values() if n["class_type"] == "LDPLoadRGBA"]
    saves = [n for n in new_graph.values() if n["class_type"] == "LDPSaveDataset"]

    def value(source):
        if isinstance(source, list):
            return new_graph[source[0]]["inputs"]["value"]
        return source

    assert loaders and saves
    assert {value(n["inputs"]["index"]) for n in loaders} == {5}
    assert {value(n["inputs"]["sample_index"]) for n in saves} == {5}
