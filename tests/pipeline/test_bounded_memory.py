"""The demo's memory does not grow with the number of portraits.

The contact sheet draws each row at cell size as its portrait is measured and keeps at most
``sheet_rows`` rows; the true alphas live in ``truth/`` and the per-portrait errors stream to
``truth_errors.jsonl``, so only running sums stay in memory.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.dataset.sheet import ContactSheet, SheetRow, contact_sheet
from comfyui_ld_portrait.pipeline.demo import run_demo
from comfyui_ld_portrait.pipeline.portrait import RefineOptions

# Runs a demo in a fresh process and prints that process's peak resident memory in KiB.
_CHILD = """
import sys
from comfyui_ld_portrait.pipeline.demo import run_demo
from comfyui_ld_portrait.pipeline.portrait import RefineOptions
summary = run_demo(sys.argv[1], count=int(sys.argv[2]), size=int(sys.argv[3]),
                   sheet_rows=int(sys.argv[4]),
                   options=RefineOptions(error_maps=True, keep_rejected=True, gate={"min_side": 64}))
assert summary.run.processed == int(sys.argv[2]), summary.to_text()
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])  # KiB: this image's own peak
"""


def _peak_kib(out_dir, count: int, size: int, sheet_rows: int) -> int:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(out_dir), str(count), str(size),
                             str(sheet_rows)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_demo_peak_memory_does_not_grow_with_the_count(tmp_path):
    # 128 px portraits, sheet capped at 8 rows: 8 portraits against 32. Before the fix every
    # portrait kept its truth and full-size sheet pictures and the sheet grew a row each: the
    # 32-portrait run peaked 84 % above the 8-portrait run (measured 131 vs 241 MB). Now both
    # hold one portrait and 8 drawn rows at a time (measured 100 vs 101 MB); 10 % is the
    # target's margin and several times that noise.
    small = _peak_kib(tmp_path / "small", 8, 128, 8)
    large = _peak_kib(tmp_path / "large", 32, 128, 8)
    assert large <= small * 1.10, (f"peak {large / 1024:.0f} MB for 32 portraits against "
                                   f"{small / 1024:.0f} MB for 8")
    # Both sheets hold 8 rows; the larger one adds only the line saying 24 were left off.
    small_sheet = cv2.imread(str(tmp_path / "small" / "contact_sheet.png"))
    large_sheet = cv2.imread(str(tmp_path / "large" / "contact_sheet.png"))
    assert large_sheet.shape[1] == small_sheet.shape[1]
    assert 0 < large_sheet.shape[0] - small_sheet.shape[0] <= 32


def test_the_demo_streams_errors_and_says_when_the_sheet_is_full(tmp_path):
    summary = run_demo(tmp_path, count=3, size=96, seed=2, sheet_rows=2,
                       options=RefineOptions(gate={"min_side": 64}, keep_rejected=True))
    records = [json.loads(line) for line in
               (tmp_path / "truth_errors.jsonl").read_text("utf-8").splitlines()]
    assert [r["sample_id"] for r in records] == ["portrait_000", "portrait_001", "portrait_002"]
    assert summary.sad_raw == pytest.approx(np.mean([r["sad_raw"] for r in records]))
    assert summary.mse_refined == pytest.approx(np.mean([r["mse_refined"] for r in records]))
    assert sorted(p.name for p in (tmp_path / "truth").iterdir()) == \
        ["portrait_000.png", "portrait_001.png", "portrait_002.png"]
    truth = cv2.imread(str(tmp_path / "truth" / "portrait_000.png"), cv2.IMREAD_UNCHANGED)
    assert truth.dtype == np.uint16 and truth.shape == (96, 96)
    assert (summary.sheet_rows, summary.sheet_left_off) == (2, 1)
    text = summary.to_text()
    assert "shows the first 2 of 3 portraits" in text and "truth_errors.jsonl" in text
    assert summary.to_json()["sheet_left_off"] == 1
    # No temporary file is left beside the outputs.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_bad_sheet_rows_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="max_rows must be a whole number >= 1, got 0"):
        run_demo(tmp_path / "out", count=1, size=64, sheet_rows=0)
    assert not (tmp_path / "out").exists()


def _row(index: int, size: int = 64) -> SheetRow:
    rng = np.random.default_rng(index)
    rgb = rng.random((size, size, 3), dtype=np.float32)
    raw = rng.random((size, size), dtype=np.float32)
    return SheetRow(f"p{index}", rgb, raw, rgb, np.round(raw), note="kept", kept=True)


def test_a_capped_sheet_draws_the_first_rows_as_the_full_sheet_does_and_says_how_many_are_off():
    cell, gap = 64, 8
    full = contact_sheet([_row(i) for i in range(5)], cell=cell, gap=gap)
    sheet = ContactSheet(cell=cell, gap=gap, max_rows=3)
    assert [sheet.add(_row(i)) for i in range(5)] == [True, True, True, False, False]
    assert (sheet.shown, sheet.skipped) == (3, 2)
    assert "first 3 of 5 portraits" in sheet.omission_note()
    capped = sheet.finish()
    # cell 64 -> text scale 0.35: titles 21 px, one legend line and each caption 18 px.
    header, row_height, caption = 21 + 18, 18 + cell + gap, 18
    rows_end = header + 3 * row_height
    assert capped.shape == (rows_end + gap + caption, full.shape[1], 3)
    np.testing.assert_array_equal(capped[:rows_end], full[:rows_end])
    footer = capped[rows_end:].astype(int)
    background = capped[-1, -1].astype(int)
    assert np.any(np.abs(footer - background).sum(axis=-1) > 200)  # the line is written
    with pytest.raises(ValueError, match="finished already"):
        sheet.finish()


def test_a_sheet_without_rows_left_off_has_no_extra_line():
    sheet = ContactSheet(cell=64, max_rows=4)
    for index in range(2):
        sheet.add(_row(index))
    assert sheet.omission_note() == ""
    np.testing.assert_array_equal(sheet.finish(), contact_sheet([_row(0), _row(1)], cell=64))
