"""``ld-portrait queue`` drives the real host through the shipped refine-a-folder workflow.

The queue runs in this process (``cli.queue.main``, the function behind the console
script) against the test host, on a copy of ``workflows/api/ld_portrait_refine_folder.json``
whose loader folder names the test's input folder (the one edit a user makes). The workflow's
``PrimitiveInt`` "sample index" counter feeds both the loader's file index and
``LDPSaveDataset.sample_index``; the queue rewrites the counter, so sample ``i`` must be the
refinement of the ``i``-th input file, which is checked against the library.

The second run covers more indices than the first (the first run's samples are skipped) and
the host is restarted while it runs: the jobs lost with the server must be retried once the
server is back, and the run must finish with every sample stored exactly once.
"""
from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.cli import queue as serverqueue
from comfyui_ld_portrait.dataset import DatasetWriter, index_id, list_sample_ids, read_manifest, verify
from comfyui_ld_portrait.dataset.imagefiles import read_rgba, write_png_atomic
from comfyui_ld_portrait.refine.connectivity import refine_alpha

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "api" / "ld_portrait_refine_folder.json"
INPUT_FOLDER = "ldp_queue_inputs"
DATASET = "ldp_queue_refined"
SIZE = 256
SOURCES = ("i2i_0_transparent.png", "t2i_0_transparent.png", "cat.png", "causal_cut.png")
FIRST_RANGE = range(0, 4)
SECOND_RANGE = range(0, 10)
RUN_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def queue_inputs(comfy_host, layerdiffuse_dir) -> list[Path]:
    """Ten distinct 256x256 RGBA inputs: the real images, whole and with the top 1/8 or 1/4
    cut off (mirrored), so that no two inputs refine to the same statistics."""
    folder = comfy_host.input_dir / INPUT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(len(SECOND_RANGE)):
        rgb, alpha = read_rgba(layerdiffuse_dir / SOURCES[number % len(SOURCES)])
        variant = number // len(SOURCES)
        rgba = np.dstack([rgb, alpha])[variant * rgb.shape[0] // 8:]
        rgba = cv2.resize(rgba[:, ::-1] if variant else rgba, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        path = folder / f"{number:02d}.png"
        write_png_atomic(path, np.clip(rgba, 0, 1))
        files.append(path)
    signatures = {refine_alpha(read_rgba(path)[1]).stats["semi_before"] for path in files}
    assert len(signatures) == len(files), "two inputs are too alike to tell their samples apart"
    return files


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory, queue_inputs) -> Path:
    graph = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    loaders = [node for node in graph.values() if node["class_type"] == "LDPLoadRGBA"]
    assert len(loaders) == 1, "the refine workflow has one folder loader"
    loaders[0]["inputs"]["path"] = INPUT_FOLDER
    path = tmp_path_factory.mktemp("queue") / "refine_folder_api.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    return path


def _argv(comfy_host, workflow: Path, indices: range, summary: Path) -> list[str]:
    return [str(workflow), "--server", comfy_host.url, "--dataset", str(comfy_host.output_dir / DATASET),
            "--dataset-name", DATASET, "--range", f"{indices.start}:{indices.stop}",
            "--allow-no-template",  # the refine workflow has no prompt template: nothing to seed
            "--poll", "0.2", "--timeout", "60", "--retries", "2", "--grace", "10",
            "--give-up-after", "120", "--summary-json", str(summary)]


def _run_queue(argv: list[str]) -> dict:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = serverqueue.main(argv, stdout=stdout, stderr=stderr)
    return {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def _complete_ids(root: Path) -> set[str]:
    """Ids with a meta file, accepted or rejected (reads only; creates nothing)."""
    return set(list_sample_ids(root)) | set(list_sample_ids(root, rejected=True))


def _check_dataset(root: Path, indices: range) -> dict:
    """Every index complete once; manifest lists exactly the accepted ones, no duplicates."""
    writer = DatasetWriter(root)
    wanted = {index_id(i) for i in indices}
    complete = writer.complete_ids()
    assert complete == wanted, f"complete ids {sorted(complete)}, expected {sorted(wanted)}"
    statuses = {sample: writer.status(sample) for sample in wanted}
    manifest_ids = [entry["id"] for entry in read_manifest(root)]
    assert len(manifest_ids) == len(set(manifest_ids)), f"duplicated manifest lines: {manifest_ids}"
    accepted = {sample for sample, status in statuses.items() if status == "accepted"}
    assert set(manifest_ids) == accepted, (manifest_ids, statuses)
    report = verify(root)
    assert report.ok, report.to_text()
    return statuses


def _check_samples_follow_their_inputs(root: Path, inputs: list[Path], statuses: dict) -> None:
    """Sample i is the refinement of input file i: the counter drove loader and saver alike.

    Every sample's meta (accepted or rejected by the quality gate) records the refinement
    statistics, which identify the input; accepted samples' alpha files are compared as well.
    """
    for sample, status in sorted(statuses.items()):
        _, raw = read_rgba(inputs[int(sample)])
        refined = refine_alpha(raw)
        meta_path = root / ("rejected" if status == "rejected" else "") / "meta" / f"{sample}.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        assert meta["sample_index"] == int(sample), meta_path
        for key in ("semi_before", "semi_after", "changed_pixels"):
            assert meta["refinement"][key] == refined.stats[key], (
                f"sample {sample} {key}: {meta['refinement'][key]} in meta, "
                f"{refined.stats[key]} for {inputs[int(sample)].name}")
        if status != "accepted":
            continue
        expected = np.clip(255.0 * refined.alpha, 0, 255).astype(np.uint8)
        saved = cv2.imread(str(root / "alpha" / f"{sample}.png"), cv2.IMREAD_UNCHANGED)
        assert saved is not None and saved.shape == expected.shape, (
            sample, None if saved is None else saved.shape)
        diff = np.abs(saved.astype(np.int16) - expected)
        assert diff.max() <= 1, f"sample {sample} is not the refinement of {inputs[int(sample)].name}"


def test_queue_runs_shipped_refine_workflow(comfy_host, workflow_copy, queue_inputs, tmp_path):
    summary_path = tmp_path / "summary.json"
    offset = comfy_host.log_size()
    result = _run_queue(_argv(comfy_host, workflow_copy, FIRST_RANGE, summary_path))
    assert result["code"] == 0, result
    # The counter-linked loader index must not upset the host (it did: IS_CHANGED got None).
    assert not comfy_host.problems_logged(offset), comfy_host.problems_logged(offset)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["requested"] == len(FIRST_RANGE) and summary["skipped"] == 0, summary
    assert summary["done"] + summary["rejected"] == len(FIRST_RANGE) and summary["failed"] == 0, summary

    root = comfy_host.output_dir / DATASET
    statuses = _check_dataset(root, FIRST_RANGE)
    assert "accepted" in statuses.values(), statuses  # at least one sample with image files
    _check_samples_follow_their_inputs(root, queue_inputs, statuses)

    # Run again: everything is already complete, nothing is submitted.
    again = _run_queue(_argv(comfy_host, workflow_copy, FIRST_RANGE, summary_path))
    assert again["code"] == 0, again
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["skipped"] == len(FIRST_RANGE) and summary["done"] == 0, summary


def test_queue_resumes_after_host_restart(comfy_host, workflow_copy, queue_inputs, tmp_path):
    root = comfy_host.output_dir / DATASET
    if not _complete_ids(root):  # run alone: make the first samples exist
        assert _run_queue(_argv(comfy_host, workflow_copy, FIRST_RANGE, tmp_path / "first.json"))["code"] == 0
    before = _complete_ids(root)
    summary_path = tmp_path / "summary.json"
    outcome: dict = {}
    argv = _argv(comfy_host, workflow_copy, SECOND_RANGE, summary_path)
    runner = threading.Thread(target=lambda: outcome.update(_run_queue(argv)), daemon=True)
    runner.start()

    # Restart the host as soon as the first new sample is stored, while later jobs are queued.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (_complete_ids(root) - before):
        assert runner.is_alive(), f"the queue ended before any new sample was stored: {outcome}"
        assert time.monotonic() < deadline, "no new sample within the time limit"
        time.sleep(0.05)
    restarted_at = len(_complete_ids(root))
    comfy_host.restart()

    runner.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not runner.is_alive(), "the queue did not finish after the host restart"
    assert outcome["code"] == 0, outcome
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert restarted_at < len(SECOND_RANGE), "the host was restarted after the run had finished"
    assert summary["requested"] == len(SECOND_RANGE) and summary["skipped"] == len(before), summary
    assert summary["done"] + summary["rejected"] + summary["skipped"] == len(SECOND_RANGE), summary
    assert summary["failed"] == 0 and summary["unfinished"] == 0, summary
    # The restart cost the jobs the server held; the queue noticed and ran them again.
    assert summary["retries"] >= 1, (summary, outcome["stderr"][-3000:])

    statuses = _check_dataset(root, SECOND_RANGE)
    _check_samples_follow_their_inputs(root, queue_inputs, statuses)


def test_counter_linked_loader_is_served_from_host_cache(comfy_host, workflow_copy, queue_inputs):
    """The same sample queued twice: the second time the host serves the loader (whose index
    is linked to the counter) and the refinement from its cache; a changed input file is
    noticed and loaded again."""
    graph = json.loads(workflow_copy.read_text(encoding="utf-8"))
    counter = next(node_id for node_id, node in graph.items() if node["class_type"] == "PrimitiveInt")
    loader = next(node_id for node_id, node in graph.items() if node["class_type"] == "LDPLoadRGBA")
    saver = next(node_id for node_id, node in graph.items() if node["class_type"] == "LDPSaveDataset")
    graph[counter]["inputs"]["value"] = 1
    graph[saver]["inputs"]["dataset_name"] = "ldp_queue_cache_check"  # not the queue's dataset

    comfy_host.run(graph)
    cached = comfy_host.cached_nodes(comfy_host.run(graph))
    assert loader in cached, "the counter-linked loader was not cached"
    stat = queue_inputs[1].stat()  # "rewrite" input 1: same picture, a later modification time
    os.utime(queue_inputs[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    cached = comfy_host.cached_nodes(comfy_host.run(graph))
    assert loader not in cached, "a rewritten input file was served from cache"
