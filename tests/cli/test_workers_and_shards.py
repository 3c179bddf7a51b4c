"""``--workers N`` and ``--shard K/N`` of the folder commands: worker
processes give the files and the summary of one worker; shards run at once into one root give
the samples of one unsharded run; bad values are refused with exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import verify
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
from comfyui_ld_portrait.dataset.provenance import META_KEY as PROVENANCE_KEY
from comfyui_ld_portrait.pipeline.folder import RefineOptions, refine_folder
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.pipeline.workers import parse_shard, shard_files, shard_of

from fixtures.matting_scenes import make_green_screen
from helpers.cli_runs import run_cli

#: Small portraits keep each run to a second or two; the gate's min_side is lowered to match,
#: and a tiny portrait is still rejected by it (so the summary has a rejection to order).
SIZE = 96
FILES = 7


def _portraits(folder: Path) -> Path:
    """FILES portraits, one too small for the gate, one broken file: every summary list has
    entries whose order a parallel run could get wrong."""
    folder.mkdir(parents=True)
    for seed in range(FILES):
        portrait = make_portrait(seed, SIZE if seed != 3 else 48)
        write_png_atomic(folder / f"p{seed:02d}.png",
                         np.dstack([portrait.rgb, portrait.alpha_artifacts]))
    (folder / "p04_broken.png").write_bytes(b"not a png")
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return _portraits(tmp_path_factory.mktemp("workers") / "in")


def _dataset_files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every image of a dataset root (meta files carry the time
    they were written, so they are compared by content below, not here)."""
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*.png")) if not path.name.startswith(".")}


def _without_run_fields(summary: dict) -> dict:
    return {key: value for key, value in summary.items()
            if key not in ("elapsed_s", "output_dir")}


def _meta_without_time(root: Path) -> dict:
    """Every meta file without the time it was written and the reference to the settings
    document (whose command line names the root, which differs between the runs compared:
    :func:`_settings` compares those documents)."""
    metas = {}
    for path in sorted(root.rglob("meta/*.json")):
        meta = json.loads(path.read_text())
        meta.pop("written")
        meta.pop(PROVENANCE_KEY)
        metas[str(path.relative_to(root))] = meta
    return metas


def _settings(root: Path) -> list[dict]:
    """The settings documents under ``provenance/``, without the output folder."""
    documents = []
    for path in sorted((root / "provenance").glob("*.json")):
        document = json.loads(path.read_text())
        document["command_line"].pop("output_dir")
        documents.append(document)
    return documents


def test_two_workers_write_the_files_and_summary_of_one(inputs, tmp_path):
    runs = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        code, out, err = run_cli(["refine", inputs, root, "--json", "--keep-rejected",
                                  "--gate", "min_side=64", "--workers", workers])
        assert code == 0, err
        runs[workers] = (root, json.loads(out), err)
    (one, one_summary, one_err), (two, two_summary, two_err) = runs[1], runs[2]
    assert one_summary["accepted"] == FILES - 1 and one_summary["rejected"] == 1, one_summary
    assert [f["file"] for f in one_summary["failed"]] == ["p04_broken.png"]
    assert _without_run_fields(two_summary) == _without_run_fields(one_summary)
    assert _dataset_files(two) == _dataset_files(one)
    assert _meta_without_time(two) == _meta_without_time(one)
    assert "failed p04_broken.png" in two_err
    assert verify(two).ok
    # The recorded command line leaves --workers out: the same settings are recorded.
    assert _settings(two) == _settings(one) and len(_settings(one)) == 1
    assert "workers" not in _settings(one)[0]["command_line"]


def test_progress_events_come_in_input_order_with_workers(inputs, tmp_path):
    orders = {}
    for workers in (1, 2):
        events = []
        refine_folder(inputs, tmp_path / f"w{workers}", RefineOptions(gate={"min_side": 64}),
                      progress=events.append, workers=workers)
        orders[workers] = [(e.done, e.file, e.outcome) for e in events]
    assert orders[2] == orders[1]
    assert [done for done, _, _ in orders[2]] == list(range(1, FILES + 2))


def test_limit_with_workers_processes_the_files_one_worker_would(inputs, tmp_path):
    summaries = {}
    for workers in (1, 3):
        root = tmp_path / f"w{workers}"
        summary = refine_folder(inputs, root, RefineOptions(gate={"min_side": 64}, limit=3),
                                workers=workers)
        summaries[workers] = (summary.processed, summary.limit_reached,
                              sorted(p.name for p in (root / "alpha").iterdir()))
    assert summaries[3] == summaries[1]
    assert summaries[1][:2] == (3, True)


def test_stop_with_workers_leaves_a_valid_dataset_that_a_rerun_completes(inputs, tmp_path):
    root = tmp_path / "out"
    events = []
    summary = refine_folder(inputs, root, RefineOptions(gate={"min_side": 64}),
                            progress=events.append, should_stop=lambda: len(events) >= 1,
                            workers=2)
    assert summary.interrupted and not summary.completed
    assert 1 <= summary.processed < FILES  # the files in flight were finished, no more
    assert verify(root).ok
    rerun = refine_folder(inputs, root, RefineOptions(gate={"min_side": 64}), workers=2)
    assert rerun.completed
    assert rerun.skipped_complete == summary.processed
    assert rerun.processed + rerun.skipped_complete == FILES


def test_key_with_two_workers_matches_one(tmp_path):
    folder = tmp_path / "in"
    for index in range(4):
        write_png_atomic(folder / f"shot_{index}.png", make_green_screen(10 + index, 96).image)
    outputs = {}
    for workers in (1, 2):
        code, out, err = run_cli(["key", folder, tmp_path / f"w{workers}", "--json",
                                  "--workers", workers])
        assert code == 0, err
        outputs[workers] = (_without_run_fields(json.loads(out)),
                            _dataset_files(tmp_path / f"w{workers}"))
    assert outputs[2] == outputs[1]
    assert outputs[1][0]["processed"] == 4


def _console_script() -> Path:
    script = Path(sys.executable).with_name("ld-portrait")
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    return script


def test_two_shards_at_once_make_the_samples_of_one_run(inputs, tmp_path):
    whole = tmp_path / "whole"
    code, _, err = run_cli(["refine", inputs, whole, "--keep-rejected", "--gate",
                            "min_side=64", "--workers", "1", "--json"])
    assert code == 0, err
    sharded = tmp_path / "sharded"
    # Two processes at once on one root, as two machines of an array job would run.
    runs = [subprocess.Popen([str(_console_script()), "refine", str(inputs), str(sharded),
                              "--keep-rejected", "--gate", "min_side=64", "--workers", "1",
                              "--shard", f"{k}/2", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in (1, 2)]
    results = [run.communicate(timeout=300) + (run.returncode,) for run in runs]
    for out, err, code in results:
        assert code == 0, err
        assert "shard " in err
    found = [json.loads(out)["found"] for out, _, _ in results]
    assert sum(found) == FILES + 1 and 0 not in found  # each shard had work to do
    assert _dataset_files(sharded) == _dataset_files(whole)
    assert _meta_without_time(sharded) == _meta_without_time(whole)
    # Both shards record one settings document (--shard is not part of it), the whole run's.
    assert _settings(sharded) == _settings(whole) and len(_settings(sharded)) == 1
    manifest = sorted((sharded / "manifest.jsonl").read_text().splitlines())
    # Every accepted sample listed once (the manifest lists accepted samples only).
    assert len(manifest) == len(set(manifest)) == FILES - 1
    assert verify(sharded).ok
    # An unsharded rerun on the sharded root finds everything done.
    code, out, _ = run_cli(["refine", inputs, sharded, "--json", "--keep-rejected", "--gate",
                            "min_side=64"])
    assert code == 0 and json.loads(out)["skipped_complete"] == FILES


def test_shard_of_a_file_depends_on_its_name_only():
    names = [f"portrait_{index:05d}.png" for index in range(400)]
    shards = [shard_files(names, (k, 4)) for k in range(1, 5)]
    assert sorted(sum(shards, [])) == names  # every file in exactly one shard
    assert all(60 < len(part) < 140 for part in shards)  # roughly even (100 expected)
    grown = names + [f"new_{index}.png" for index in range(50)]
    assert all(shard_of(name, 4) == k for k, part in enumerate(shards, 1) for name in part)
    assert [name for name in shard_files(grown, (2, 4)) if name in names] == shards[1]
    assert shard_files(names, None) == names


@pytest.mark.parametrize("text, expected", [("1/2", (1, 2)), ("2/2", (2, 2)), (" 3/8", (3, 8)),
                                            ("1/1", (1, 1))])
def test_parse_shard_reads_k_of_n(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("argv, message", [
    (["--shard", "3/2"], "K must be between 1 and 2"),
    (["--shard", "0/2"], "K must be between 1 and 2"),
    (["--shard", "a/b"], "expected K/N"),
    (["--shard", "2"], "expected K/N"),
    (["--shard", "1/0"], "N, the number of shards, must be at least 1"),
    (["--workers", "0"], "expected the number of worker processes, 1 or more"),
    (["--workers", "two"], "expected the number of worker processes, 1 or more"),
])
@pytest.mark.parametrize("command", ["refine", "key"])
def test_bad_workers_or_shard_is_a_usage_error(command, argv, message, tmp_path):
    code, _, err = run_cli([command, tmp_path, tmp_path / "out", *argv])
    assert code == 2
    assert message in err and ("--shard" in err or "--workers" in err)
    assert not (tmp_path / "out").exists()


def test_evaluate_with_two_workers_prints_what_one_prints(tmp_path):
    for seed in range(5):
        portrait = make_portrait(seed, 64)
        write_png_atomic(tmp_path / "truth" / f"m{seed}.png", portrait.alpha_true)
        write_png_atomic(tmp_path / "pred" / f"m{seed}.png", portrait.alpha_artifacts)
    (tmp_path / "pred" / "m2.png").write_bytes(b"broken")  # a failure to keep in order
    reports = {}
    for workers in (1, 2):
        code, out, err = run_cli(["evaluate", tmp_path / "pred", tmp_path / "truth", "--json",
                                  "--workers", workers])
        assert code == 1, err  # the broken pair
        reports[workers] = json.loads(out)
    assert reports[2] == reports[1]
    assert [row["name"] for row in reports[1]["images"]] == ["m0.png", "m1.png", "m3.png",
                                                             "m4.png"]
    assert [failure["name"] for failure in reports[1]["failures"]] == ["m2.png"]


@pytest.mark.parametrize("layout", ["comp1k", "am2k"])
def test_export_with_two_workers_writes_the_files_of_one(inputs, tmp_path, layout):
    root = tmp_path / "dataset"
    refine_folder(inputs, root, RefineOptions(gate={"min_side": 64}))
    (root / "alpha" / "p02.png").write_bytes(b"broken")  # a failed sample, reported in order
    exports = {}
    for workers in (1, 2):
        dest = tmp_path / f"w{workers}"
        code, out, err = run_cli(["dataset", "export", root, dest, "--layout", layout,
                                  "--per-fg", "2", "--limit", "2,4", "--json",
                                  "--workers", workers])
        assert code == 1, err  # the broken sample
        summary = json.loads(out)
        summary.pop("dest")
        files = {str(path.relative_to(dest)): path.read_bytes()
                 for path in sorted(dest.rglob("*")) if path.is_file()}
        exports[workers] = (summary, files, err.count("p02"))
    assert exports[2] == exports[1]
    assert len(exports[1][1]) > 20 and exports[1][2] >= 1


def test_the_worker_server_starts_early_in_its_own_process_only_for_several_workers():
    # A command with --workers 2 starts the fork server before its own imports (they overlap);
    # the server imports the folder jobs' modules in its own process, not in this one.
    probe = (
        "import sys, argparse\n"
        "from multiprocessing import forkserver\n"
        "from comfyui_ld_portrait.cli.app import _start_workers_early\n"
        "_start_workers_early(argparse.Namespace(workers=1))\n"
        "one = forkserver._forkserver._forkserver_pid\n"
        "_start_workers_early(argparse.Namespace(workers=2))\n"
        "two = forkserver._forkserver._forkserver_pid\n"
        "print(one is None, two is not None, 'numpy' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               timeout=120, check=True)
    import multiprocessing

    has_server = "forkserver" in multiprocessing.get_all_start_methods()  # not on macOS/Windows
    assert completed.stdout.split() == ["True", str(has_server), "False"], completed.stderr
