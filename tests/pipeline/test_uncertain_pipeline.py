"""Uncertain pixels through the pipeline: process_portrait hands them to the gate and
the error-map panel, a folder run rejects a matte dominated by them, and the demo's contact
sheet shows them."""
import json

import cv2
import numpy as np

from comfyui_ld_portrait.dataset import load_sample
from comfyui_ld_portrait.dataset.imagefiles import write_png_atomic
from comfyui_ld_portrait.pipeline.demo import run_demo
from comfyui_ld_portrait.pipeline.folder import RefineOptions, refine_folder
from comfyui_ld_portrait.pipeline.portrait import process_portrait
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.base.errormap import UNCERTAIN_CYAN, error_panel
from helpers.veiled_bust import veiled_bust

GATE = {"min_side": 128}


def _rgb(alpha: np.ndarray) -> np.ndarray:
    return np.dstack([np.full_like(alpha, 0.8), np.full_like(alpha, 0.5), np.full_like(alpha, 0.3)])


def test_process_portrait_passes_uncertain_to_the_gate_and_the_panel():
    alpha = veiled_bust()
    expected = refine_alpha(alpha)
    processed = process_portrait(_rgb(alpha), alpha, gate=GATE, error_map=True)
    np.testing.assert_array_equal(processed.uncertain, expected.uncertain)
    assert processed.verdict.reasons == ["uncertain_matte"]
    assert processed.verdict.measures["uncertain_pixels"] == int(expected.uncertain.sum())
    assert processed.stats["uncertain_pixels"] == int(expected.uncertain.sum())
    np.testing.assert_array_equal(processed.error_map, error_panel(
        _rgb(alpha), alpha, expected.alpha, expected.changed, uncertain=expected.uncertain))
    # The threshold is an ordinary gate keyword.
    relaxed = process_portrait(_rgb(alpha), alpha, gate={**GATE, "max_uncertain_fraction": 0.5})
    assert relaxed.verdict.keep, relaxed.verdict.messages
    plain = process_portrait(_rgb(veiled_bust(None)), veiled_bust(None), gate=GATE)
    assert plain.verdict.keep and not plain.uncertain.any()


def test_a_folder_run_rejects_the_veiled_matte_and_counts_the_reason(tmp_path):
    source = tmp_path / "in"
    for name, veil in (("plain.png", None), ("veiled.png", 0.65)):
        alpha = veiled_bust(veil)
        write_png_atomic(source / name, np.dstack([_rgb(alpha), alpha]))
    summary = refine_folder(source, tmp_path / "out", RefineOptions(gate=GATE, keep_rejected=True))
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert [(r.file, r.reasons) for r in summary.rejected_files] == [("veiled.png", ("uncertain_matte",))]
    assert summary.reject_reasons == {"uncertain_matte": 1}
    meta = json.loads(next((tmp_path / "out").rglob("meta/veiled.json")).read_text())
    assert meta["refinement"]["uncertain_pixels"] > 0
    assert meta["verdict"]["measures"]["uncertain_fraction"] > 0.1


def test_the_demo_sheet_has_the_uncertain_legend_line(tmp_path):
    summary = run_demo(tmp_path, count=1, size=128,
                       options=RefineOptions(gate={"min_side": 64}, keep_rejected=True, error_maps=True))
    sheet = cv2.cvtColor(cv2.imread(summary.contact_sheet, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    # Cell 128 -> text scale 0.35: titles 21 px, then two legend lines of 18 px.
    legend = sheet[21 + 18:21 + 2 * 18].astype(int)
    cyan = np.round(np.array(UNCERTAIN_CYAN) * 255).astype(int)
    near_cyan = np.all(np.abs(legend - cyan) < 80, axis=-1)
    assert near_cyan.sum() > 10
    sample = load_sample(tmp_path / "dataset", "portrait_000")
    assert "uncertain_pixels" in sample.meta["refinement"]
