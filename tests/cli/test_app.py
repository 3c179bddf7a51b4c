"""The ld-portrait command: refine, demo, dataset verify, errors, resume, interrupt."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.cli import app as cli
from comfyui_ld_portrait.pipeline import folder as pipeline_folder
from comfyui_ld_portrait.pipeline.demo import run_demo
from comfyui_ld_portrait.dataset import read_manifest, verify

from helpers.cli_runs import portrait_folder, run_cli

REAL_IMAGES = ("i2i_0_transparent.png", "causal_cut.png")


_run = run_cli


def _make_input(folder: Path, layerdiffuse_dir: Path) -> Path:
    """Two real Layer Diffusion images, a corrupt PNG and an RGB-only PNG."""
    folder.mkdir(parents=True)
    for name in REAL_IMAGES:
        shutil.copyfile(layerdiffuse_dir / name, folder / name)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    cv2.imwrite(str(folder / "rgb_only.png"), np.full((64, 64, 3), 128, np.uint8))
    (folder / "notes.txt").write_text("ignored: not a PNG")
    return folder


@pytest.fixture(scope="module")
def refined(tmp_path_factory, layerdiffuse_dir):
    """One refine run over the mixed folder (shared by several tests: real images are slow)."""
    base = tmp_path_factory.mktemp("cli")
    input_dir = _make_input(base / "in", layerdiffuse_dir)
    output_dir = base / "out"
    code, out, err = _run(["refine", str(input_dir), str(output_dir), "--error-maps"])
    return {"input": input_dir, "output": output_dir, "code": code, "out": out, "err": err}


def test_refine_writes_the_dataset_and_skips_bad_files(refined):
    assert refined["code"] == 0, refined["err"]
    root = refined["output"]
    out, err = refined["out"], refined["err"]
    # Bad files are reported on stderr as they happen and in the summary, and did not stop
    # the run.
    for name in ("corrupt.png", "rgb_only.png"):
        assert f"failed {name}: " in err
        assert f"    {name}: " in out
    assert "expected RGBA" in out and "not a readable image" in out
    assert "alpha/mask input" not in out  # the CLI has no such input to suggest
    kept = sum(1 for _ in (refined["output"] / "meta").glob("*.json"))
    assert "4 PNG file(s)" in out
    counts = ", ".join(part for part in (f"{kept} accepted" if kept else "",
                                         f"{2 - kept} rejected" if kept < 2 else "",
                                         "2 failed") if part)
    assert f"  {counts} in " in out
    assert "Traceback" not in err
    # Not a TTY: no progress bar redraws; the summary on stdout is the one report.
    assert "\r" not in err and "refine: " not in err

    ids = {Path(name).stem for name in REAL_IMAGES}
    complete = {p.stem for p in (root / "meta").glob("*.json")} | {
        p.stem for p in (root / "rejected/meta").glob("*.json")}
    assert complete == ids
    for entry in read_manifest(root):
        for kind in ("fg", "alpha", "raw_alpha", "error_map"):
            assert (root / entry[kind]).is_file()
        fg = cv2.imread(str(root / entry["fg"]), cv2.IMREAD_UNCHANGED)
        alpha = cv2.imread(str(root / entry["alpha"]), cv2.IMREAD_UNCHANGED)
        assert fg.shape == (1024, 1024, 3) and alpha.shape == (1024, 1024)
        panel = cv2.imread(str(root / entry["error_map"]), cv2.IMREAD_UNCHANGED)
        assert panel.shape[0] == 1024 and panel.shape[1] > 1024  # a multi-picture panel
        meta = json.loads((root / "meta" / f"{entry['id']}.json").read_text())
        assert meta["source_file"] == entry["id"] + ".png"
        assert meta["verdict"]["keep"] is True
        raw = cv2.imread(str(root / entry["raw_alpha"]), cv2.IMREAD_UNCHANGED)
        # Every stored 8-bit difference is a pixel refinement changed (smaller changes round away).
        assert int((raw != alpha).sum()) <= meta["refinement"]["changed_pixels"]
        import hashlib
        source = refined["input"] / meta["source_file"]
        assert meta["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    report = verify(root)
    assert report.ok, report.to_text()
    assert report.accepted + report.rejected == 2


def test_refined_alpha_differs_from_raw_on_the_artifact_image(refined):
    root = refined["output"]
    status = "" if (root / "meta/i2i_0_transparent.json").is_file() else "rejected/"
    raw = cv2.imread(str(root / f"{status}raw_alpha/i2i_0_transparent.png"), cv2.IMREAD_UNCHANGED)
    alpha = cv2.imread(str(root / f"{status}alpha/i2i_0_transparent.png"), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(refined["input"] / "i2i_0_transparent.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw, original[..., 3])
    semi = lambda a: int(((a > 0) & (a < 255)).sum())  # noqa: E731
    assert semi(alpha) < semi(raw)


def test_second_run_resumes_and_changes_nothing(refined):
    root = refined["output"]
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    code, out, err = _run(["refine", str(refined["input"]), str(root), "--error-maps"])
    assert code == 0, err
    assert "  2 failed, 2 already complete in " in out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == before
    assert len(read_manifest(root)) == len(list((root / "meta").glob("*.json")))


def test_console_script_subprocess(refined, tmp_path):
    script = Path(sys.executable).with_name("ld-portrait")
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("ld-portrait ")
    # Only the small bad files and one real image, to keep it quick.
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    for name in ("corrupt.png", "rgb_only.png", "causal_cut.png"):
        shutil.copyfile(refined["input"] / name, input_dir / name)
    result = subprocess.run([str(script), "refine", str(input_dir), str(tmp_path / "out"),
                             "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["completed"] and summary["processed"] == 1 and summary["found"] == 3
    assert sorted(f["file"] for f in summary["failed"]) == ["corrupt.png", "rgb_only.png"]


def test_limit_and_resume_in_steps(tmp_path, layerdiffuse_dir):
    input_dir = portrait_folder(tmp_path / "in", layerdiffuse_dir, "b.png")
    # A small synthetic portrait keeps this test fast; it is refined like any other file.
    from comfyui_ld_portrait.pipeline.synthetic import make_portrait
    from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
    portrait = make_portrait(1, 256)
    write_png_atomic(input_dir / "a.png", np.dstack([portrait.rgb, portrait.alpha_artifacts]))
    output_dir = tmp_path / "out"
    code, out, _ = _run(["refine", str(input_dir), str(output_dir), "--limit", "1", "--16bit"])
    summary = json.loads(_run(["refine", str(input_dir), str(tmp_path / "o2"), "--limit", "1",
                               "--json"])[1])
    assert summary["processed"] == 1 and summary["limit_reached"]
    assert code == 0 and "stopped at --limit" in out
    code, out, _ = _run(["refine", str(input_dir), str(output_dir), "--limit", "1", "--16bit"])
    assert code == 0 and "1 already complete" in out
    assert "stopped at --limit" not in out
    alphas = list(output_dir.rglob("alpha/*.png"))
    assert len(alphas) == 2
    assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16 for p in alphas)
    assert verify(output_dir).ok


def test_demo_writes_inputs_dataset_and_contact_sheet(tmp_path):
    out_dir = tmp_path / "demo"
    code, out, err = _run(["demo", str(out_dir), "--count", "2", "--size", "128",
                           "--gate", "min_side=64"])
    assert code == 0, err
    inputs = sorted((out_dir / "input").glob("*.png"))
    assert [p.name for p in inputs] == ["portrait_000.png", "portrait_001.png"]
    rgba = cv2.imread(str(inputs[0]), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (128, 128, 4)
    dataset_dir = out_dir / "dataset"
    report = verify(dataset_dir)
    assert report.ok and report.accepted + report.rejected == 2, report.to_text()
    # The demo keeps error maps and rejected samples so every portrait is on the sheet.
    assert len(list(dataset_dir.rglob("error_maps/*.png"))) == 2
    sheet = cv2.imread(str(out_dir / "contact_sheet.png"), cv2.IMREAD_UNCHANGED)
    assert sheet is not None and sheet.ndim == 3
    assert sheet.shape[0] > 2 * 128 and sheet.shape[1] > 4 * 128
    assert len(np.unique(sheet.reshape(-1, 3), axis=0)) > 100  # real pictures, not a blank
    meta = json.loads(next(dataset_dir.rglob("meta/portrait_000.json")).read_text())
    from comfyui_ld_portrait.pipeline.synthetic import pose_for_seed
    assert meta["seed"] == 0 and meta["attributes"]["pose"] == pose_for_seed(0)
    # The recorded generator names a function that exists (it named a module gone since).
    import importlib
    module, _, function = meta["synthetic"]["generator"].rpartition(".")
    assert callable(getattr(importlib.import_module(f"comfyui_ld_portrait.{module}"), function))
    assert str(out_dir / "contact_sheet.png") in out and "SAD" in out


def test_demo_refinement_improves_on_the_synthetic_truth(tmp_path):
    summary = run_demo(tmp_path, count=2, size=192, seed=5,
                             options=pipeline_folder.RefineOptions(gate={"min_side": 64},
                                                         keep_rejected=True))
    assert summary.run.processed == 2
    assert summary.sad_refined < summary.sad_raw
    assert Path(summary.contact_sheet).is_file()


def test_unwritable_output_is_a_clear_error(tmp_path, layerdiffuse_dir):
    input_dir = portrait_folder(tmp_path / "in", layerdiffuse_dir, "a.png")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, out, err = _run(["refine", str(input_dir), str(blocker / "out")])
    assert code == 1
    assert "ld-portrait: error: cannot use" in err and "Traceback" not in err
    code, _, err = _run(["demo", str(blocker / "demo"), "--count", "1", "--size", "64"])
    assert code == 1 and "error:" in err


def test_write_failure_mid_run_stops_with_exit_1_and_keeps_earlier_samples(tmp_path,
                                                                          monkeypatch):
    from comfyui_ld_portrait.dataset import DatasetWriter
    from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
    from comfyui_ld_portrait.pipeline.synthetic import make_portrait
    input_dir = tmp_path / "in"
    for seed in range(3):
        portrait = make_portrait(seed, 96)
        write_png_atomic(input_dir / f"p{seed}.png",
                         np.dstack([portrait.rgb, portrait.alpha_artifacts]))
    real_write = DatasetWriter.write_sample
    calls = {"n": 0}

    def failing_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write_sample", failing_write)
    # One worker: the patched writer lives in this process, not in worker processes.
    code, out, err = _run(["refine", str(input_dir), str(tmp_path / "out"), "--keep-rejected",
                           "--workers", "1"])
    assert code == 1
    assert "No space left on device" in err and "disk full" in err and "Traceback" not in err
    assert verify(tmp_path / "out").ok
    assert (verify(tmp_path / "out").accepted + verify(tmp_path / "out").rejected) == 1


@pytest.mark.parametrize("argv, message", [
    (["refine", "/no/such/folder", "/tmp/whatever"], "does not exist"),
    (["refine", "IN", "OUT", "--gate", "min_sidee=3"], "unknown --gate quality threshold"),
    (["refine", "IN", "OUT", "--gate", "min_side"], "NAME=VALUE"),
    (["refine", "IN", "OUT", "--param", "raech=3"], "reach  ("),
    (["refine", "IN", "OUT", "--gate", "min_side=-3"], "out of range 0..16384"),
    (["refine", "IN", "OUT", "--max-pixels", "0"], ">= 1"),
    (["refine", "IN", "OUT", "--max-file-mb", "-1"], "> 0"),
    (["refine", "IN", "IN"], "is the input folder"),
    (["refine", "IN", "IN/sub"], "inside the input folder"),
    (["refine", "IN", "OUT", "--limit", "-1"], ">= 0"),
    (["dataset", "sheet", "IN", "OUT/s.png", "--count", "0"], ">= 1"),
    (["dataset", "sheet", "IN", "OUT/s.png", "--columns", "0"], ">= 1"),
    (["dataset", "sheet", "IN", "OUT/s.png", "--cell", "0"], ">= 1"),
    (["dataset", "sheet", "IN", "OUT/s.png", "--seed", "-1"], ">= 0"),
    (["dataset", "stats", "IN", "--top", "0"], ">= 1"),
    (["demo", "OUT", "--count", "0"], "count must be"),
    (["demo", "OUT", "--size", "16"], "size must be"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, tmp_path):
    (tmp_path / "in").mkdir()
    places = {"IN": str(tmp_path / "in"), "OUT": str(tmp_path / "out")}
    err = io.StringIO()
    argv = [places[a.split("/")[0]] + a[len(a.split("/")[0]):] if a.split("/")[0] in places
            else a for a in argv]
    code = cli.main(argv, stdout=io.StringIO(), stderr=err)
    assert code == 2
    # argparse's own errors and the command's checks both go to the given stream.
    assert message in err.getvalue()
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_no_command_prints_help():
    code, out, _ = _run([])
    assert code == 2 and "refine" in out and "demo" in out


@pytest.mark.parametrize("managed", ["fg", "meta", "rejected", "quarantine"])
def test_input_folder_inside_dataset_folders_is_refused(tmp_path, managed):
    (tmp_path / "out" / managed).mkdir(parents=True)
    with pytest.raises(ValueError, match="inside the dataset's own folder"):
        pipeline_folder.refine_folder(tmp_path / "out" / managed, tmp_path / "out")


def test_output_inside_or_equal_to_input_is_refused_before_anything_is_written(tmp_path):
    # The dataset's fg/ and meta/ used to be mixed into the source folder.
    from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
    from comfyui_ld_portrait.pipeline.synthetic import make_portrait
    portrait = make_portrait(2, 96)
    write_png_atomic(tmp_path / "p.png", np.dstack([portrait.rgb, portrait.alpha_artifacts]))
    options = pipeline_folder.RefineOptions(gate={"min_side": 64}, keep_rejected=True)
    for output, words in ((tmp_path / "dataset", "inside the input folder"),
                          (tmp_path, "is the input folder"),
                          (tmp_path / "a" / ".." / "dataset", "inside the input folder")):
        with pytest.raises(ValueError, match=words):
            pipeline_folder.refine_folder(tmp_path, output, options)
        code, _, err = _run(["refine", str(tmp_path), str(output)])
        assert code == 2 and words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_stop_request_ends_cleanly_after_the_current_file_and_rerun_continues(tmp_path):
    from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
    from comfyui_ld_portrait.pipeline.synthetic import make_portrait
    for seed in range(3):
        portrait = make_portrait(seed, 96)
        write_png_atomic(tmp_path / "in" / f"p{seed}.png",
                         np.dstack([portrait.rgb, portrait.alpha_artifacts]))
    events = []
    options = pipeline_folder.RefineOptions(gate={"min_side": 64}, keep_rejected=True)
    summary = pipeline_folder.refine_folder(tmp_path / "in", tmp_path / "out", options,
                                  progress=events.append, should_stop=lambda: len(events) >= 1)
    assert summary.interrupted and not summary.completed
    assert summary.processed == 1 and len(events) == 1
    assert "interrupted" in summary.to_text()
    assert verify(tmp_path / "out").ok
    rest = pipeline_folder.refine_folder(tmp_path / "in", tmp_path / "out", options)
    assert rest.completed and rest.skipped_complete == 1 and rest.processed == 2


def test_ctrl_c_handler_stops_softly_then_hard():
    stream = io.StringIO()
    flag = cli.StopFlag(stream)
    assert not flag()
    flag._handle(2, None)
    assert flag() and "stopping after the current file" in stream.getvalue()
    with pytest.raises(KeyboardInterrupt):
        flag._handle(2, None)


def test_progress_bar_draws_on_a_terminal_and_stays_quiet_otherwise():
    quiet = io.StringIO()
    bar = cli.ProgressBar(3, stream=quiet)
    for done in (1, 2, 3):
        bar.update(done, "accepted", f"file{done}.png")
    bar.finish()
    assert quiet.getvalue().count("\n") == 1 and "3/3 file(s)" in quiet.getvalue()

    tty = io.StringIO()
    bar = cli.ProgressBar(2, stream=tty, enabled=True)
    bar.update(1, "skipped", "a.png")
    bar.update(2, "accepted", "b.png")
    bar.finish()
    text = tty.getvalue()
    assert "\r" in text and "ETA" in text and "2/2" in text and "1 skipped" in text


def test_dataset_verify_command(refined, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(refined["output"], root)
    code, out, _ = _run(["dataset", "verify", str(root)])
    assert code == 0 and "consistent" in out
    (root / "manifest.jsonl").write_text("")
    code, out, _ = _run(["dataset", "verify", str(root), "--json"])
    report = json.loads(out)
    accepted = report["accepted"]
    assert (code == 1) == (accepted > 0)
    code, out, _ = _run(["dataset", "verify", str(root), "--repair"])
    assert code == 0
    assert len(read_manifest(root)) == accepted
    code, _, err = _run(["dataset", "verify", str(tmp_path / "nothing")])
    assert code == 1 and "no such dataset folder" in err


def test_sigint_stops_the_console_script_after_the_current_file(tmp_path, layerdiffuse_dir):
    import glob
    import signal
    import time

    # Real 1024 px images: each takes long enough to interrupt.
    input_dir = portrait_folder(tmp_path / "in", layerdiffuse_dir,
                                *(f"copy{index}.png" for index in range(8)))
    script = Path(sys.executable).with_name("ld-portrait")
    output_dir = tmp_path / "out"
    process = subprocess.Popen([str(script), "refine", str(input_dir), str(output_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not glob.glob(str(output_dir / "*" / "meta" / "*.json")) and not glob.glob(
            str(output_dir / "meta" / "*.json")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopping after the current file" in err and "Traceback" not in err
    assert "interrupted: run the same command again" in out
    report = verify(output_dir)
    assert report.ok and 1 <= report.accepted + report.rejected < 8
    code, out, _ = _run(["refine", str(input_dir), str(output_dir)])
    assert code == 0 and f"{report.accepted + report.rejected} already complete in" in out
    assert verify(output_dir).accepted + verify(output_dir).rejected == 8


def test_demo_rerun_resumes_and_refuses_other_settings(tmp_path):
    options = pipeline_folder.RefineOptions(gate={"min_side": 64}, keep_rejected=True, error_maps=True)
    first = run_demo(tmp_path, count=1, size=96, seed=3, options=options)
    assert first.run.processed == 1
    again = run_demo(tmp_path, count=2, size=96, seed=3, options=options)
    assert again.run.skipped_complete == 1 and again.run.processed == 1
    code, _, err = _run(["demo", str(tmp_path), "--count", "1", "--size", "128", "--seed", "3"])
    assert code == 2 and "already holds a demo" in err
    # A damaged settings file is named as such, not reported as "a demo made with None".
    (tmp_path / "demo.json").write_text("{not json", "utf-8")
    code, _, err = _run(["demo", str(tmp_path), "--count", "1", "--size", "96", "--seed", "3"])
    assert code == 2 and "demo.json" in err and "cannot be read" in err and "None" not in err


def test_zero_is_accepted_where_it_means_something():
    parser = cli.build_parser()
    assert parser.parse_args(["refine", "IN", "OUT", "--limit", "0"]).limit == 0
    assert parser.parse_args(["dataset", "sheet", "R", "o.png", "--seed", "0"]).seed == 0
    assert parser.parse_args(["dataset", "stats", "R", "--top", "1"]).top == 1


def test_usage_errors_help_and_version_go_to_the_callers_streams(capsys):
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["refine", "in", "out", "--no-such-option"], stdout=out, stderr=err) == 2
    assert "unrecognized arguments: --no-such-option" in err.getvalue()
    assert cli.main(["--version"], stdout=out, stderr=err) == 0
    assert out.getvalue().startswith("ld-portrait ")
    assert cli.main(["refine", "--help"], stdout=out, stderr=err) == 0
    assert "usage: ld-portrait refine" in out.getvalue()
    assert capsys.readouterr() == ("", "")  # nothing leaked to the process streams
