"""``ld-portrait key INPUT_DIR OUTPUT_DIR`` end to end on synthetic green-screen photographs."""
import io
import json

import numpy as np

from comfyui_ld_portrait.dataset import load_sample, verify
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic

from fixtures.matting_scenes import make_green_screen
from helpers.cli_runs import run_cli


def _run(*argv):
    return run_cli(argv)


def test_key_writes_a_verifiable_dataset_and_resumes(tmp_path):
    inputs = tmp_path / "in"
    scenes = {f"shot_{i}.png": make_green_screen(10 + i, 96) for i in range(2)}
    for name, scene in scenes.items():
        write_png_atomic(inputs / name, scene.image)
    (inputs / "broken.png").write_bytes(b"not a png")
    root = tmp_path / "keyed"
    code, out, err = _run("key", str(inputs), str(root), "--json", "--no-gate")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["accepted"] == 2 and len(summary["failed"]) == 1
    assert "broken.png" in err
    assert verify(root).ok
    sample = load_sample(root, "shot_0")
    assert sample.meta["tool"]["command"] == "key"
    assert sample.meta["keying"]["key_source"] == "border"
    assert np.abs(sample.alpha - scenes["shot_0.png"].alpha).mean() < 0.05
    code, out, _ = _run("key", str(inputs), str(root), "--json", "--no-gate")
    assert code == 0 and json.loads(out)["skipped_complete"] == 2


def test_key_refuses_bad_arguments_with_exit_2(tmp_path):
    code, _, err = _run("key", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "in").mkdir()
    code, _, err = _run("key", str(tmp_path / "in"), str(tmp_path / "out"), "--key-colour", "grey")
    assert code == 2 and "not understood" in err
    code, _, err = _run("key", str(tmp_path / "in"), str(tmp_path / "out"),
                        "--clip-black", "0.7", "--clip-white", "0.3")
    assert code == 2 and "clip_white" in err


def test_key_refuses_an_output_inside_the_input_like_refine(tmp_path):
    from comfyui_ld_portrait.cli import main

    source = tmp_path / "screens"
    source.mkdir()
    out, err = io.StringIO(), io.StringIO()
    assert main(["key", str(source), str(source / "dataset")], stdout=out, stderr=err) == 2
    assert "inside the input folder" in err.getvalue()
    assert not (source / "dataset").exists()
