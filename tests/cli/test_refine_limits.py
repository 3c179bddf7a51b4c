"""`ld-portrait refine` / `demo` command line: size limits, exit codes, help, messages."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers.bombs import write_full_png_bomb, write_png_bomb
from helpers.cli_runs import portrait_folder, run_cli


_run = run_cli


def test_a_bomb_beside_a_portrait_costs_little_memory_and_is_named(tmp_path, layerdiffuse_dir):
    # A 20000x20000 header once pushed `refine` to 18 GB and a cv2.error.
    source = tmp_path / "in"
    source.mkdir()
    # A complete 1.5 MB PNG that decodes to 20000x20000 (as in that case), and a bare header.
    write_full_png_bomb(source / "bomb.png", 20000, 20000)
    assert 1 << 20 < (source / "bomb.png").stat().st_size < 2 << 20
    write_png_bomb(source / "huge.png", 60000, 60000)
    shutil.copyfile(layerdiffuse_dir / "causal_cut.png", source / "portrait.png")
    # The peak is VmHWM, this process image's own high-water mark: ru_maxrss would carry over
    # the RSS of the forked pytest process across exec (Linux keeps it), and that grows with
    # whatever ran before this test.
    script = textwrap.dedent("""
        import sys
        from comfyui_ld_portrait.cli import main
        code = main(sys.argv[1:])
        with open("/proc/self/status") as status:
            peak_kib = int(status.read().split("VmHWM:")[1].split()[0])  # KiB
        print(f"PEAK_KIB={peak_kib}", file=sys.stderr)
        sys.exit(code)
    """)
    result = subprocess.run([sys.executable, "-c", script, "refine", str(source),
                             str(tmp_path / "out"), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peak_kib = int(re.search(r"PEAK_KIB=(\d+)", result.stderr).group(1))
    assert peak_kib < 1 << 20, f"peak memory {peak_kib / 1024:.0f} MiB"
    summary = json.loads(result.stdout)
    assert summary["processed"] == 1
    failed = {f["file"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"bomb.png", "huge.png"}
    assert "20000x20000" in failed["bomb.png"] and "60000x60000" in failed["huge.png"]
    assert "Traceback" not in result.stderr


def test_limits_from_options_reach_the_reader(tmp_path, layerdiffuse_dir):
    source = portrait_folder(tmp_path / "in", layerdiffuse_dir)
    code, out, _ = _run(["refine", str(source), str(tmp_path / "a"), "--max-pixels", "1000",
                         "--json"])
    assert code == 0 and "1024x1024" in json.loads(out)["failed"][0]["reason"]
    code, out, _ = _run(["refine", str(source), str(tmp_path / "b"), "--max-file-mb", "0.01",
                         "--json"])
    assert code == 0 and "over the limit of 10485 bytes" in json.loads(out)["failed"][0]["reason"]


def test_existing_file_as_output_is_exit_2_without_a_progress_line(tmp_path, layerdiffuse_dir):
    # It once exited 1 after printing a progress line.
    source = portrait_folder(tmp_path / "in", layerdiffuse_dir)
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    code, out, err = _run(["refine", str(source), str(target)])
    assert code == 2 and "existing file" in err
    # One line: the error, and no progress line before it.
    assert err.startswith("ld-portrait: error:") and err.count("\n") == 1 and out == ""
    assert target.read_text() == "keep me"


def test_input_without_pngs_is_exit_1_and_creates_nothing(tmp_path):
    # It once exited 0 and created the output.
    (tmp_path / "in").mkdir()
    code, _, err = _run(["refine", str(tmp_path / "in"), str(tmp_path / "out")])
    assert code == 1 and "holds no PNG file" in err
    assert not (tmp_path / "out").exists()


def test_help_lists_parameter_and_gate_names_with_ranges():
    from comfyui_ld_portrait.refine.quality import QualityThresholds

    code, text, _ = _run(["refine", "--help"])
    assert code == 0
    assert "refine/connectivity.py" not in text and "refine/quality.py for names" not in text
    assert re.search(r"  reach  \(", text) and "  min_side  (0..16384, default 256)" in text
    doc = QualityThresholds.__dataclass_fields__["min_side"].metadata["doc"]
    assert " ".join(doc.split()[:5]) in " ".join(text.split())


def test_misspelt_param_lists_the_valid_names(tmp_path):
    (tmp_path / "in").mkdir()
    code, _, err = _run(["refine", str(tmp_path / "in"), str(tmp_path / "out"), "--param",
                         "raech=20"])
    assert code == 2
    assert "unexpected keyword argument" not in err
    assert "'raech'" in err and "  reach  (" in err and "  solid_radius  (" in err
    assert not (tmp_path / "out").exists()


def test_demo_prints_one_duration_and_errors_with_significant_digits(tmp_path):
    # It once printed two different durations and "MSE ... -> 0.00e-3".
    code, out, err = _run(["demo", str(tmp_path / "demo"), "--count", "2", "--size", "128",
                           "--gate", "min_side=64"])
    assert code == 0, err
    durations = re.findall(r"\d+(?:\.\d+)? s\b|\d+:\d\d\b", out + err)
    assert len(durations) == 1, out + err
    mse = re.search(r"MSE (\S+) -> (\S+)", out)
    raw, refined = float(mse.group(1)), float(mse.group(2))
    assert raw > refined > 0  # a refined error printed as a number, not rounded to zero
    assert all(len(re.sub(r"[^0-9]", "", g).lstrip("0")) >= 2 for g in mse.groups())


@pytest.mark.parametrize("command", ["refine", "key"])
def test_unlistable_input_folder_is_exit_1_with_a_message(tmp_path, monkeypatch, command):
    # Review: listing INPUT_DIR for the progress total ran outside the error handling, so a
    # folder that exists but cannot be listed (no read permission) ended in a traceback.
    import pathlib

    source = tmp_path / "in"
    source.mkdir()
    real_iterdir = pathlib.Path.iterdir

    def refuse(self):
        if self == source:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", refuse)
    code, out, err = _run([command, str(source), str(tmp_path / "out")])
    assert code == 1 and "cannot be listed" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
