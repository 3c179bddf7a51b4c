"""``ld-portrait evaluate``: the demo's refined alphas against the synthetic truth, CSV / JSON
output, and a clear error for every kind of bad input."""
from __future__ import annotations

import csv
import io
import json

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.imagefiles import read_gray, write_png_atomic
from comfyui_ld_portrait.evaluation import evaluate_pair
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.base.trimap import trimap_from_alpha

from comfyui_ld_portrait.cli.app import main
from helpers.cli_runs import run_cli

METRICS = ["sad", "mse", "mad", "grad", "conn"]


def _run(*argv):
    return run_cli(argv)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`ld-portrait demo` output plus the truth it was made from (and 10 px band trimaps)."""
    root = tmp_path_factory.mktemp("demo")
    code, _, err = _run("demo", root, "--count", 3, "--size", 256)
    assert code == 0, err
    settings = json.loads((root / "demo.json").read_text())
    inputs = sorted((root / "input").glob("portrait_*.png"))
    assert len(inputs) == 3
    for index, path in enumerate(inputs):
        truth = make_portrait(settings["seed"] + index, settings["size"]).alpha_true
        write_png_atomic(root / "truth" / path.name, truth)
        write_png_atomic(root / "trimaps" / path.name,
                         trimap_from_alpha(truth, 10).astype(np.float32) / 255)
    return root


def test_demo_refined_alphas_against_the_truth_print_the_table(demo, tmp_path):
    table = tmp_path / "scores.csv"
    code, out, err = _run("evaluate", demo / "dataset" / "alpha", demo / "truth",
                          "--trimap", demo / "trimaps", "--csv", table)
    assert code == 0, err
    assert "3 image(s) evaluated" in out
    for label in ("SAD", "MSE", "MAD", "Grad", "Conn"):
        assert any(line.split()[:1] == [label] for line in out.splitlines()), label
    assert "evaluate: 3/3" in err  # the progress bar's final line
    rows = list(csv.DictReader(table.open()))
    assert [row["name"] for row in rows] == ["portrait_000.png", "portrait_001.png",
                                             "portrait_002.png"]
    assert list(rows[0]) == ["name"] + METRICS
    # Each row is the library's figure for that file pair.
    for row in rows:
        pred = read_gray(demo / "dataset" / "alpha" / row["name"])
        truth = read_gray(demo / "truth" / row["name"])
        trimap = read_gray(demo / "trimaps" / row["name"])
        expected = evaluate_pair(pred, truth, trimap).as_dict()
        for metric in METRICS:
            assert float(row[metric]) == pytest.approx(expected[metric], rel=1e-9)
    # The printed mean is the mean of the rows.
    sad_line = next(line for line in out.splitlines() if line.startswith("SAD"))
    assert float(sad_line.split()[1]) == pytest.approx(
        np.mean([float(row["sad"]) for row in rows]), rel=1e-4)


def test_refinement_beats_the_raw_alpha_on_every_measure(demo):
    def means(folder):
        code, out, err = _run("evaluate", folder, demo / "truth", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["evaluated"] == 3 and report["failed"] == 0
        return {metric: report["summary"][metric]["mean"] for metric in METRICS}

    raw, refined = means(demo / "dataset" / "raw_alpha"), means(demo / "dataset" / "alpha")
    for metric in METRICS:
        assert refined[metric] < raw[metric], metric


def test_whole_protocol_sad_is_the_plain_sum(demo):
    code, out, err = _run("evaluate", demo / "dataset" / "alpha", demo / "truth",
                          "--protocol", "whole", "--json")
    assert code == 0, err
    for image in json.loads(out)["images"]:
        pred = read_gray(demo / "dataset" / "alpha" / image["name"]).astype(np.float64)
        truth = read_gray(demo / "truth" / image["name"]).astype(np.float64)
        assert image["sad"] == pytest.approx(np.abs(pred - truth).sum() / 1000, rel=1e-6)
        assert image["mad"] == pytest.approx(np.abs(pred - truth).mean(), rel=1e-6)


# --- bad input ------------------------------------------------------------------------------

def _folders(tmp_path, names=("a.png", "b.png"), size=(40, 50)):
    rng = np.random.default_rng(3)
    pred_dir, truth_dir = tmp_path / "pred", tmp_path / "truth"
    for name in names:
        write_png_atomic(truth_dir / name, rng.random(size).astype(np.float32))
        write_png_atomic(pred_dir / name, rng.random(size).astype(np.float32))
    return pred_dir, truth_dir


def test_sixteen_bit_pngs_are_accepted(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path)
    matte = read_gray(pred_dir / "a.png")
    write_png_atomic(pred_dir / "a.png", matte, bits=16)
    assert cv2.imread(str(pred_dir / "a.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    code, out, err = _run("evaluate", pred_dir, truth_dir, "--json")
    assert code == 0, err
    image = json.loads(out)["images"][0]
    expected = evaluate_pair(matte, read_gray(truth_dir / "a.png"))
    assert image["sad"] == pytest.approx(expected.sad, rel=1e-5)


def test_missing_folder_is_a_usage_error(tmp_path):
    _, truth_dir = _folders(tmp_path)
    code, _, err = _run("evaluate", tmp_path / "nowhere", truth_dir)
    assert code == 2 and "PRED_DIR" in err and "no such folder" in err


def test_unpaired_names_are_listed_and_nothing_is_evaluated(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path)
    (pred_dir / "b.png").rename(pred_dir / "c.png")
    code, out, err = _run("evaluate", pred_dir, truth_dir)
    assert code == 1 and out == ""
    assert "without a prediction" in err and "b.png" in err
    assert "without a truth file" in err and "c.png" in err


def test_missing_trimap_is_reported(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path)
    trimap_dir = tmp_path / "trimaps"
    write_png_atomic(trimap_dir / "a.png", np.full((40, 50), 128 / 255, np.float32))
    code, _, err = _run("evaluate", pred_dir, truth_dir, "--trimap", trimap_dir)
    assert code == 1 and "without a trimap" in err and "b.png" in err


@pytest.mark.parametrize("damage, message", [
    ("size", "prediction is 30x40 but truth is 50x40"),
    ("colour", "colour image"),
    ("transparent", "transparency"),
    ("corrupt", "not a readable image"),
])
def test_a_bad_pair_is_named_and_the_others_still_count(tmp_path, damage, message):
    pred_dir, truth_dir = _folders(tmp_path)
    path = pred_dir / "a.png"
    if damage == "size":
        write_png_atomic(path, np.zeros((40, 30), np.float32))
    elif damage == "colour":
        colour = np.zeros((40, 50, 3), np.uint8)
        colour[..., 2] = 200
        cv2.imwrite(str(path), colour)
    elif damage == "transparent":
        rgba = np.full((40, 50, 4), 100, np.uint8)
        rgba[..., 3] = 128
        cv2.imwrite(str(path), rgba)
    else:
        path.write_bytes(path.read_bytes()[:60])
    code, out, err = _run("evaluate", pred_dir, truth_dir, "--json")
    assert code == 1
    assert "a.png" in err and message in err, err
    report = json.loads(out)
    assert report["evaluated"] == 1 and [item["name"] for item in report["images"]] == ["b.png"]
    assert report["failures"][0]["name"] == "a.png"


def test_rgb_matte_with_equal_channels_is_accepted(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path, names=("a.png",))
    gray = np.round(read_gray(pred_dir / "a.png") * 255).astype(np.uint8)
    cv2.imwrite(str(pred_dir / "a.png"), np.repeat(gray[..., None], 3, axis=2))
    code, _, err = _run("evaluate", pred_dir, truth_dir)
    assert code == 0, err


def test_trimap_with_stray_values_is_refused(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path, names=("a.png",))
    trimap = np.full((40, 50), 128, np.uint8)
    trimap[0, 0] = 127
    (tmp_path / "trimaps").mkdir()
    cv2.imwrite(str(tmp_path / "trimaps" / "a.png"), trimap)
    code, _, err = _run("evaluate", pred_dir, truth_dir, "--trimap", tmp_path / "trimaps")
    assert code == 1 and "other than 0, 128, 255" in err and "127" in err


def test_whole_protocol_refuses_a_trimap(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path)
    code, _, err = _run("evaluate", pred_dir, truth_dir, "--trimap", truth_dir,
                        "--protocol", "whole")
    assert code == 2 and "takes no --trimap" in err


def test_empty_unknown_region_writes_nan_and_says_so(tmp_path):
    pred_dir, truth_dir = _folders(tmp_path)
    trimap_dir = tmp_path / "trimaps"
    write_png_atomic(trimap_dir / "a.png", np.zeros((40, 50), np.float32))  # no unknown pixel
    write_png_atomic(trimap_dir / "b.png", np.full((40, 50), 128 / 255, np.float32))
    table = tmp_path / "out.csv"
    code, out, err = _run("evaluate", pred_dir, truth_dir, "--trimap", trimap_dir, "--csv", table)
    assert code == 0, err
    rows = {row["name"]: row for row in csv.DictReader(table.open())}
    assert rows["a.png"]["mse"] == "nan" and float(rows["a.png"]["sad"]) == 0.0
    assert "1 image(s) without unknown pixels left out" in out


def test_an_unexpected_error_still_ends_the_progress_line(tmp_path, monkeypatch):
    from comfyui_ld_portrait.cli.evaluate import pairs as evaluate_pairs_module

    pred_dir, truth_dir = _folders(tmp_path)

    def broken(pairs, protocol, *, limits=None, progress=None, should_stop=None, workers=1):
        progress(1, "evaluated", "a.png")
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(evaluate_pairs_module, "evaluate_pairs", broken)
    err = io.StringIO()
    with pytest.raises(RuntimeError, match="disk vanished"):
        main(["evaluate", str(pred_dir), str(truth_dir)], stdout=io.StringIO(), stderr=err)
    assert err.getvalue().endswith("\n")
    assert "evaluate: 1/" in err.getvalue()  # the bar's final line was written
