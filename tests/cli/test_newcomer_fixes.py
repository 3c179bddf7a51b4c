"""What a newcomer met on a first day with the folder commands.

Changed sources on resume, temporary files left by a killed writer, ``evaluate --csv`` checked
up front, true counts of ``dataset export --limit``, options the hints name, empty input
folders, libpng's own stderr, the help text, the demo figures in the docs, the pymatting
notice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from comfyui_ld_portrait.dataset import verify
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic

from fixtures.matting_scenes import make_green_screen
from helpers.cli_runs import run_cli


def _portrait(seed: int, size: int = 72) -> np.ndarray:
    """A small RGBA disc with a soft rim (refine accepts or rejects it; either completes it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((size * 0.35 - radius) / 4.0, 0.0, 1.0)
    colour = np.broadcast_to(rng.uniform(0.2, 0.9, 3), (size, size, 3))
    return np.dstack((colour, alpha)).astype(np.float32)


def _green_screens(folder: Path, *names: str) -> Path:
    for index, name in enumerate(names):
        write_png_atomic(folder / name, make_green_screen(10 + index, 64).image)
    return folder


# ---- changed sources --------------------------------------------------------------------------

def test_refine_reports_a_changed_source_and_replaces_it_on_request(tmp_path):
    inputs, root = tmp_path / "in", tmp_path / "out"
    write_png_atomic(inputs / "a.png", _portrait(1))
    write_png_atomic(inputs / "b.png", _portrait(2))
    code, _, err = run_cli(["refine", inputs, root, "--json"])
    assert code == 0, err
    write_png_atomic(inputs / "a.png", _portrait(3))  # same name, other picture

    code, out, err = run_cli(["refine", inputs, root, "--json"])
    summary = json.loads(out)
    assert code == 0, err
    assert summary["skipped_complete"] == 1  # b only: a is not "already complete"
    assert [entry["file"] for entry in summary["changed"]] == ["a.png"]
    assert "content differs" in summary["changed"][0]["reason"]
    code, text, _ = run_cli(["refine", inputs, root])
    assert "--replace-changed" in text and "a.png" in text and "1 already complete" in text

    code, out, err = run_cli(["refine", inputs, root, "--json", "--replace-changed"])
    summary = json.loads(out)
    assert code == 0, err
    assert [entry["file"] for entry in summary["replaced"]] == ["a.png"]
    assert summary["processed"] == 1 and not summary["changed"]
    new_sha = __import__("hashlib").sha256((inputs / "a.png").read_bytes()).hexdigest()
    metas = list(root.glob("meta/a.json")) + list(root.glob("rejected/meta/a.json"))
    assert len(metas) == 1 and json.loads(metas[0].read_text())["source_sha256"] == new_sha
    assert verify(root).ok
    code, out, _ = run_cli(["refine", inputs, root, "--json"])
    assert json.loads(out)["skipped_complete"] == 2 and not json.loads(out)["changed"]


def test_key_reports_a_changed_source_and_replaces_it_on_request(tmp_path):
    inputs, root = _green_screens(tmp_path / "in", "a.png", "b.png"), tmp_path / "keyed"
    assert run_cli(["key", inputs, root, "--no-gate"])[0] == 0
    (inputs / "a.png").write_bytes((inputs / "b.png").read_bytes())
    code, out, _ = run_cli(["key", inputs, root, "--no-gate", "--json"])
    summary = json.loads(out)
    assert code == 0 and summary["skipped_complete"] == 1
    assert [entry["file"] for entry in summary["changed"]] == ["a.png"]
    code, out, _ = run_cli(["key", inputs, root, "--no-gate", "--json", "--replace-changed"])
    summary = json.loads(out)
    assert code == 0 and summary["accepted"] == 1 and len(summary["replaced"]) == 1
    manifest = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert sorted(entry["id"] for entry in manifest) == ["a", "b"]
    assert verify(root).ok


def test_a_touched_but_identical_source_is_not_changed_and_an_unchanged_one_is_not_read(
        tmp_path, monkeypatch):
    from comfyui_ld_portrait.pipeline import folder

    inputs, root = _green_screens(tmp_path / "in", "a.png", "b.png"), tmp_path / "keyed"
    assert run_cli(["key", inputs, root, "--no-gate"])[0] == 0
    os.utime(inputs / "a.png", ns=(1, 1))  # copied back with other dates: same content
    hashed = []
    digest = folder.file_digest
    monkeypatch.setattr(folder, "file_digest",
                        lambda path: hashed.append(path.name) or digest(path))
    code, out, _ = run_cli(["key", inputs, root, "--no-gate", "--json"])
    summary = json.loads(out)
    assert code == 0 and summary["skipped_complete"] == 2 and not summary["changed"]
    assert hashed == ["a.png"]  # b.png: size and time as recorded, not read again


# ---- temporary files of a killed writer --------------------------------------------------------

def _killed_writer_temporary(folder: Path) -> Path:
    """Create a temporary file the way the writer does, in a process killed with SIGKILL
    before it could rename it (what `kill -9` in the middle of a write leaves)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = ("import os, signal, sys\n"
              "from comfyui_ld_portrait.dataset.safeio import create_temporary\n"
              "fd, path = create_temporary(sys.argv[1], '.png')\n"
              "os.write(fd, b'half a png')\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", script, str(folder)], check=False)
    assert result.returncode == -9
    (left,) = [path for path in folder.iterdir() if path.name.startswith(".tmp-")]
    return left


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids are POSIX")
def test_a_rerun_removes_the_temporary_files_of_a_killed_writer(tmp_path):
    inputs, root = _green_screens(tmp_path / "in", "a.png"), tmp_path / "keyed"
    assert run_cli(["key", inputs, root, "--no-gate"])[0] == 0
    left = _killed_writer_temporary(root / "fg")
    code, out, err = run_cli(["key", inputs, root, "--no-gate"])
    assert code == 0, err
    assert not left.exists()
    assert "removed 1 temporary file(s)" in out


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids are POSIX")
def test_verify_repair_removes_the_temporary_files_of_a_killed_writer_and_says_so(tmp_path):
    inputs, root = _green_screens(tmp_path / "in", "a.png"), tmp_path / "keyed"
    assert run_cli(["key", inputs, root, "--no-gate"])[0] == 0
    left = _killed_writer_temporary(root / "fg")
    code, out, _ = run_cli(["dataset", "verify", root])
    assert code == 0 and left.exists() and left.name in out  # listed, not removed
    code, out, _ = run_cli(["dataset", "verify", root, "--repair"])
    assert code == 0 and not left.exists()
    assert "removed 1 stale temporary file(s)" in out


def test_a_running_writers_temporary_file_is_left_alone(tmp_path):
    from comfyui_ld_portrait.dataset import remove_stale_temporary
    from comfyui_ld_portrait.dataset.safeio import create_temporary

    (tmp_path / "meta").mkdir()
    fd, path = create_temporary(tmp_path / "meta", ".json")
    os.close(fd)
    foreign = tmp_path / "meta" / ".tmp-0123abcd-1-feed.json"  # another machine's writer
    foreign.write_bytes(b"x")
    assert remove_stale_temporary(tmp_path) == 0
    assert Path(path).exists() and foreign.exists()


# ---- options the hints name, empty folders --------------------------------------------------

def test_key_accepts_the_max_pixels_option_its_error_message_suggests(tmp_path):
    inputs = _green_screens(tmp_path / "in", "a.png")
    code, out, err = run_cli(["key", inputs, tmp_path / "keyed", "--no-gate", "--json",
                              "--max-pixels", "1000"])
    assert code == 0, err
    (failure,) = json.loads(out)["failed"]
    assert "--max-pixels" in failure["reason"]
    code, out, err = run_cli(["key", inputs, tmp_path / "keyed", "--no-gate", "--json",
                              "--max-pixels", "5000", "--max-file-mb", "1"])
    assert code == 0 and json.loads(out)["accepted"] == 1, err


def _clip(folder: Path) -> tuple[Path, Path]:
    from fixtures.matting_scenes import make_moving_clip

    clip = make_moving_clip(3, frames=3, size=40)
    for index, (frame, mask) in enumerate(zip(clip.frames, clip.masks)):
        write_png_atomic(folder / "frames" / f"{index:04d}.png", frame)
        write_png_atomic(folder / "masks" / f"{index:04d}.png", mask)
    return folder / "frames", folder / "masks"


def test_video_matte_accepts_the_max_pixels_option_its_error_message_suggests(tmp_path):
    frames, masks = _clip(tmp_path)
    code, _, err = run_cli(["video-matte", frames, masks, tmp_path / "out", "--max-pixels", "1000"])
    assert code == 2 and "--max-pixels" in err and "unrecognized" not in err
    assert not (tmp_path / "out").exists()


def test_key_on_an_empty_folder_fails_and_writes_nothing_like_refine(tmp_path):
    (tmp_path / "empty").mkdir()
    for command in ("refine", "key"):
        code, _, err = run_cli([command, tmp_path / "empty", tmp_path / command])
        assert code == 1 and "no PNG file" in err, (command, err)
        assert not (tmp_path / command).exists(), command


def test_video_matte_announces_the_one_time_pymatting_compile(tmp_path, monkeypatch):
    from comfyui_ld_portrait.cli import video_matte

    frames, masks = _clip(tmp_path)
    monkeypatch.setattr(video_matte, "_pymatting_kernels_cached", lambda: False)
    code, _, err = run_cli(["video-matte", frames, masks, tmp_path / "first", "--band", "3"])
    assert code == 0, err
    assert err.startswith(video_matte.PYMATTING_COMPILE_NOTICE + "\n")
    monkeypatch.setattr(video_matte, "_pymatting_kernels_cached", lambda: True)
    code, _, err = run_cli(["video-matte", frames, masks, tmp_path / "again", "--band", "3"])
    assert code == 0 and "compiling" not in err


def test_the_pymatting_cache_is_told_by_numbas_index_files(tmp_path, monkeypatch):
    import importlib

    from comfyui_ld_portrait.cli import video_matte

    package = tmp_path / "site" / "pymatting"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "pymatting", raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba_cache"))
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    importlib.invalidate_caches()
    assert not video_matte._pymatting_kernels_cached()
    (package / "__pycache__" / "boxfilter.boxfilter_rows-6.py311.nbi").write_bytes(b"")
    assert video_matte._pymatting_kernels_cached()


# ---- evaluate --csv, export --limit counts -------------------------------------------------

def _matte_pairs(folder: Path, *names: str) -> tuple[Path, Path]:
    ramp = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    for name in names:
        write_png_atomic(folder / "pred" / name, ramp)
        write_png_atomic(folder / "truth" / name, ramp)
    return folder / "pred", folder / "truth"


def test_evaluate_refuses_a_csv_in_a_missing_folder_up_front_and_creates_nothing(tmp_path):
    pred, truth = _matte_pairs(tmp_path, "a0.png")
    target = tmp_path / "no_such_folder" / "x.csv"
    code, out, err = run_cli(["evaluate", pred, truth, "--csv", target])
    assert code == 2 and "does not exist" in err and "no_such_folder" in err
    assert not target.parent.exists()
    assert "evaluate:" not in err and not out  # refused before any pair was evaluated
    (tmp_path / "a_file").write_text("")
    code, _, err = run_cli(["evaluate", pred, truth, "--csv", tmp_path / "a_file" / "x.csv"])
    assert code == 2 and "evaluate:" not in err
    code, _, err = run_cli(["evaluate", pred, truth, "--csv", tmp_path / "x.csv"])
    assert code == 0, err
    assert (tmp_path / "x.csv").read_text().startswith("name,sad")


def test_evaluate_names_a_broken_file_once_and_libpng_stays_quiet(tmp_path, capfd):
    pred, truth = _matte_pairs(tmp_path, "a0.png", "a1.png")
    data = (pred / "a0.png").read_bytes()
    (pred / "a0.png").write_bytes(data[: len(data) // 2])  # truncated
    code, _, err = run_cli(["evaluate", pred, truth])
    assert code == 1
    (line,) = [line for line in err.splitlines() if "a0.png" in line]
    assert line.count("a0.png") == 1 and "truncated" in line
    assert "libpng" not in capfd.readouterr().err


def test_libpngs_own_error_line_goes_into_our_message_not_the_console(tmp_path, capfd):
    inputs = _green_screens(tmp_path / "in", "a.png", "b.png")
    data = bytearray((inputs / "b.png").read_bytes())
    data[100:300] = bytes(200)  # a broken zlib stream; the file still ends with IEND
    (inputs / "b.png").write_bytes(bytes(data))
    code, out, err = run_cli(["key", inputs, tmp_path / "keyed", "--no-gate", "--json"])
    assert code == 0, err
    (failure,) = json.loads(out)["failed"]
    assert failure["file"] == "b.png" and "libpng error" in failure["reason"]
    assert "libpng" not in capfd.readouterr().err  # the process's own stderr


def test_key_uses_the_same_word_for_a_failure_in_progress_and_summary(tmp_path):
    inputs = _green_screens(tmp_path / "in", "a.png")
    (inputs / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(["key", inputs, tmp_path / "keyed", "--no-gate"])
    assert code == 0
    assert "failed broken.png:" in err and "skipped" not in err
    assert "1 failed" in out


def test_export_with_nested_limits_reports_what_was_written_and_each_failure_once(tmp_path):
    from comfyui_ld_portrait.dataset.export import plan_split

    names = [f"s{index}.png" for index in range(6)]
    inputs, root = _green_screens(tmp_path / "in", *names), tmp_path / "ds"
    assert run_cli(["key", inputs, root, "--no-gate"])[0] == 0
    train, _ = plan_split([Path(name).stem for name in names], 1.0, 0)
    (root / "fg" / f"{train[0]}.png").write_bytes(b"broken")  # in both subsets
    code, out, err = run_cli(["dataset", "export", root, tmp_path / "out", "--layout", "am2k",
                              "--limit", "5,3", "--split", "1.0", "--json"])
    result = json.loads(out)
    assert code == 1
    assert result["subsets"]["limit_3"] == {"train": 2, "validation": 0, "failed": 1}
    assert result["subsets"]["limit_5"] == {"train": 4, "validation": 0, "failed": 1}
    (failure,) = result["failures"]
    assert failure.startswith(train[0]) and "limit_3, limit_5" in failure
    assert err.count(f"failed {train[0]}") == 1
    for subset, count in (("limit_3", 2), ("limit_5", 4)):
        assert len(list((tmp_path / "out" / subset / "train" / "fg").iterdir())) == count


# ---- the help lists every dataset action -----------------------------------------------------

def test_the_top_level_help_lists_every_dataset_action():
    code, help_text, _ = run_cli(["--help"])
    (line,) = [line for line in help_text.splitlines() if line.strip().startswith("dataset ")]
    _, actions_help, _ = run_cli(["dataset", "--help"])
    for action in ("verify", "stats", "sheet", "export"):
        assert action in line and f"    {action} " in actions_help


# ---- the demo figures in docs/command_line.md ------------------------------------------------

def test_the_demo_figures_in_the_docs_are_what_the_demo_prints(tmp_path):
    import re

    docs = Path(__file__).resolve().parents[2] / "docs" / "command_line.md"
    section = docs.read_text(encoding="utf-8").split("## The demo:", 1)[1]
    pattern = re.compile(r"against the synthetic ground truth[^\n]*")
    documented = pattern.search(section).group(0)
    code, out, err = run_cli(["demo", tmp_path / "demo"])  # the defaults the docs show
    assert code == 0, err
    assert pattern.search(out).group(0) == documented


def test_only_the_decoders_own_lines_are_kept_off_stderr(tmp_path, monkeypatch, capfd):
    """Text another part of the process writes to stderr during a decode (a Ctrl-C notice from
    a signal handler) still reaches stderr; libpng's line goes into our message."""
    from comfyui_ld_portrait.dataset import imagefiles

    def noisy_decode(data, flags):
        os.write(2, b"libpng error: IDAT: invalid distance too far back\n")
        sys.stderr.write("stopping after the current file\n")
        return None

    write_png_atomic(tmp_path / "a.png", np.zeros((8, 8), np.float32))
    monkeypatch.setattr(imagefiles.cv2, "imdecode", noisy_decode)
    previous = imagefiles.quiet_decoder_messages(True)
    try:
        with pytest.raises(imagefiles.ImageFileError, match="invalid distance too far back"):
            imagefiles.read_gray(tmp_path / "a.png")
    finally:
        imagefiles.quiet_decoder_messages(previous)
    err = capfd.readouterr().err
    assert "stopping after the current file" in err and "libpng" not in err
