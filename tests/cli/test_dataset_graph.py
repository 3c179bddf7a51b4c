"""``ld-portrait dataset graph ROOT ID``: the API graph (or refine / key settings) that made a
sample, written so that ``ld-portrait queue`` makes the same sample id and seed again."""
from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.cli.queue.graph import (inspect_graph, job_seed, load_workflow,
                                                 rewrite_graph)
from comfyui_ld_portrait.dataset import index_id
from comfyui_ld_portrait.nodes.dataset import LDPSaveDataset

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows" / "api"


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["dataset", "graph", *map(str, argv)], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _save_as_the_host_would(output, job_graph, index, seed, count=1, name="ds"):
    """What ComfyUI does with a queued job: run LDPSaveDataset with the graph as PROMPT."""
    fg = torch.rand(count, 16, 12, 3, generator=torch.Generator().manual_seed(index))
    alpha = torch.zeros(count, 16, 12)
    alpha[:, 3:14, 2:10] = 1.0
    LDPSaveDataset().save(fg, alpha, dataset_name=name, sample_index=index, seed=seed,
                          output_root=str(output), api_graph=job_graph,
                          extra_pnginfo={"workflow": {"nodes": [], "links": []}})
    return output / name


def _queue_options(note: str) -> dict:
    """The options of the ``ld-portrait queue`` line the command printed."""
    line = next(line for line in note.splitlines() if line.strip().startswith("ld-portrait queue"))
    words = shlex.split(line)[3:]
    options, i = {}, 0
    while i < len(words):
        if words[i] in ("--start", "--count", "--seed", "--dataset-name"):
            options[words[i]] = words[i + 1]
            i += 2
        else:
            options[words[i]] = True
            i += 1
    return options


def _requeue(graph, options):
    """The job graph ``ld-portrait queue`` submits with ``options`` (its own rewrite)."""
    info = inspect_graph(graph)
    base = int(options.get("--seed", info.template_seed or 0))
    rewritten, _ = rewrite_graph(graph, int(options["--start"]), base_seed=base,
                                 keep_sampler_seed="--keep-sampler-seed" in options,
                                 allow_no_template="--allow-no-template" in options)
    return rewritten, base


@pytest.mark.parametrize("workflow", ["ld_portrait_20k_generate.json",
                                      "ld_portrait_refine_folder.json"])
def test_the_graph_of_a_queued_sample_queues_again_to_the_same_id_and_seed(tmp_path, workflow):
    shipped = load_workflow(WORKFLOWS / workflow)
    index, base_seed = 123, 77
    job, _ = rewrite_graph(shipped, index, base_seed=base_seed,  # what `queue` sent
                           allow_no_template=not inspect_graph(shipped).template_nodes)
    seed = job_seed(base_seed, index)
    root = _save_as_the_host_would(tmp_path, job, index, seed)
    out_file = tmp_path / "again.json"
    code, out, err = _run(root, index_id(index), "-o", out_file)
    assert code == 0, err
    written = load_workflow(out_file)  # the queue's own reader accepts it
    assert written == job
    options = _queue_options(out)
    assert options["--start"] == str(index) and options["--count"] == "1"
    requeued, base = _requeue(written, options)
    assert requeued == job  # the queue changes nothing: same index, same seeds
    saves = [n for n in requeued.values() if n["class_type"] == "LDPSaveDataset"]
    counter_or_index = saves[0]["inputs"]["sample_index"]
    if isinstance(counter_or_index, list):  # linked: a template's index or a counter's value
        source = requeued[counter_or_index[0]]["inputs"]
        counter_or_index = source.get("index", source.get("value"))
    assert index_id(counter_or_index) == index_id(index)
    if inspect_graph(written).template_nodes:
        assert job_seed(base, index) == seed == json.loads(
            (root / "meta" / f"{index_id(index)}.json").read_text())["seed"]
        assert f"sampler seed {seed}" in out


def test_json_goes_to_stdout_and_the_note_to_stderr_and_an_index_finds_the_id(tmp_path):
    job, _ = rewrite_graph(load_workflow(WORKFLOWS / "ld_portrait_20k_generate.json"), 5,
                           base_seed=1)
    root = _save_as_the_host_would(tmp_path, job, 5, job_seed(1, 5))
    code, out, err = _run(root, 5)
    assert code == 0
    assert json.loads(out) == job
    assert "sample 000005" in err and "ld-portrait queue" in err


def test_an_image_of_a_batch_names_the_batch_start(tmp_path):
    job, _ = rewrite_graph(load_workflow(WORKFLOWS / "ld_portrait_20k_generate.json"), 40,
                           base_seed=3)
    root = _save_as_the_host_would(tmp_path, job, 40, job_seed(3, 40), count=3)
    code, out, err = _run(root, "000042", "-o", tmp_path / "g.json")
    assert code == 0
    assert "image 2 of a batch starting at 40" in out
    assert _queue_options(out)["--start"] == "40"


def test_refine_and_key_samples_give_their_settings(tmp_path):
    import cv2

    source = tmp_path / "in"
    source.mkdir()
    rgba = np.zeros((64, 48, 4), np.uint8)
    rgba[8:60, 10:38] = (90, 120, 150, 255)
    cv2.imwrite(str(source / "one.png"), rgba)
    green = np.zeros((64, 48, 3), np.uint8)
    green[:] = (0, 200, 0)
    green[8:64, 10:38] = (90, 120, 150)
    (tmp_path / "screen").mkdir()
    cv2.imwrite(str(tmp_path / "screen" / "one.png"), green)
    quiet = dict(stdout=io.StringIO(), stderr=io.StringIO())
    assert cli.main(["refine", str(source), str(tmp_path / "refined"), "--param", "reach=9",
                     "--16bit"], **quiet) == 0
    assert cli.main(["key", str(tmp_path / "screen"), str(tmp_path / "keyed"), "--no-gate",
                     "--spill", "0.5"], **quiet) == 0
    code, out, err = _run(tmp_path / "refined", "one")
    assert code == 0, err
    settings = json.loads(out)
    assert settings["command"] == "refine" and "ld-portrait refine" in err
    assert settings["command_line"]["param"] == ["reach=9"]
    assert settings["command_line"]["sixteen_bit"] is True
    assert settings["parameters"]["refine_params"]["reach"] == 9
    assert settings["parameters"]["options"]["alpha_bits"] == 16
    assert "min_side" in settings["parameters"]["quality_thresholds"]  # defaults filled in
    code, out, err = _run(tmp_path / "keyed", "one")
    assert code == 0, err
    settings = json.loads(out)
    assert settings["command"] == "key" and settings["command_line"]["spill"] == 0.5
    assert settings["parameters"]["options"]["key"]["spill_strength"] == 0.5


def test_missing_sample_or_record_or_document_exits_1_with_the_reason(tmp_path):
    job, _ = rewrite_graph(load_workflow(WORKFLOWS / "ld_portrait_20k_generate.json"), 0,
                           base_seed=0)
    root = _save_as_the_host_would(tmp_path, job, 0, job_seed(0, 0))
    code, out, err = _run(root, "000009")
    assert code == 1 and "no complete sample" in err and out == ""
    _save_as_the_host_would(tmp_path, None, 1, 1)  # a client that sent no graph
    code, _, err = _run(root, 1)
    assert code == 1 and "records no graph" in err
    for stored in (root / "provenance").iterdir():
        stored.write_text("{}")
    code, _, err = _run(root, 0)
    assert code == 1 and "does not match its sha256" in err
    for stored in (root / "provenance").iterdir():
        stored.unlink()
    code, _, err = _run(root, 0)
    assert code == 1 and "missing" in err and "provenance/" in err
    holiday = tmp_path / "photos"
    holiday.mkdir()
    code, _, err = _run(holiday, 0)
    assert code == 1 and "not a dataset" in err


def test_dataset_help_lists_graph():
    out = io.StringIO()
    cli.main(["dataset"], stdout=out, stderr=io.StringIO())
    assert re.search(r"\bgraph\b", out.getvalue())
