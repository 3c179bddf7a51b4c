"""Our DIM measures against the Adobe MATLAB code itself, run by GNU Octave.

``fixtures/dim_octave.json`` was written by tools/octave_fixtures/make_fixtures.py, which runs the
unmodified ``DIM_evaluation_code/*.m`` under Octave on the PNG triples beside it. MATLAB works
in single precision, so agreement is required to 1e-5 relative.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.evaluation import evaluate_pair
from comfyui_ld_portrait.evaluation import metrics

FIXTURES = Path(__file__).parent / "fixtures"
RECORD = json.loads((FIXTURES / "dim_octave.json").read_text())
CASES = sorted(RECORD["cases"])
REL = 1e-5


def _load(name):
    def read(suffix):
        image = cv2.imread(str(FIXTURES / f"{name}_{suffix}.png"), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint8 and image.ndim == 2
        return image
    return read("pred"), read("truth"), read("trimap")


def _agree(ours: float, reference):
    if reference is None:  # MATLAB's NaN (0 / 0 over an empty region)
        return math.isnan(ours)
    return ours == pytest.approx(reference, rel=REL, abs=1e-12)


def test_fixture_set_covers_the_required_cases():
    required = {"constant_error", "step_edge", "shifted_disk", "hair_noisy", "partial_range",
                "all_unknown", "empty_unknown", "component_tie"}
    assert required <= set(CASES)
    assert RECORD["reference"]["repository"] == "Yaoyi-Li/GCA-Matting"


@pytest.mark.parametrize("name", CASES)
def test_each_measure_matches_octave(name):
    pred, truth, trimap = _load(name)
    reference = RECORD["cases"][name]
    results = {"sad": metrics.sad_error(pred, truth, trimap),
               "mse": metrics.mse_error(pred, truth, trimap),
               "grad": metrics.gradient_error(pred, truth, trimap),
               "conn": metrics.connectivity_error(pred, truth, trimap)}
    for key, ours in results.items():
        assert _agree(ours, reference[key]), (name, key, ours, reference[key])


@pytest.mark.parametrize("name", CASES)
def test_evaluate_pair_matches_octave_also_from_float_input(name):
    pred, truth, trimap = _load(name)
    reference = RECORD["cases"][name]
    # What an image reader returns: float32 0..1 for the mattes and the trimap.
    errors = evaluate_pair(pred.astype(np.float32) / 255, truth.astype(np.float32) / 255,
                           trimap.astype(np.float32) / 255, protocol="dim")
    for key in ("sad", "mse", "grad", "conn"):
        assert _agree(getattr(errors, key), reference[key]), (name, key)


def test_component_tie_is_decided_in_column_major_order():
    """The fixture's two tied squares give different errors depending on which one is kept;
    Octave keeps the one that comes first column by column, so must we."""
    pred, truth, trimap = _load("component_tie")
    ours = metrics.connectivity_error(pred, truth, trimap)
    transposed = metrics.connectivity_error(pred.T.copy(), truth.T.copy(), trimap.T.copy())
    assert _agree(ours, RECORD["cases"]["component_tie"]["conn"])
    assert abs(ours - transposed) > 0.01  # the tie-break really matters for this case


def test_partial_range_prediction_is_stretched_by_mat2gray():
    """A prediction spanning 40..200 has, after mat2gray, nearly the truth's gradient: the
    error is tiny while the unnormalised one (divide by 255) is not."""
    pred, truth, trimap = _load("partial_range")
    stretched = metrics.gradient_error(pred, truth, trimap)
    region = trimap == 128
    raw = metrics.gradient_magnitude(pred / 255.0) - metrics.gradient_magnitude(truth / 255.0)
    unnormalised = float(np.sum(raw[region] ** 2)) / 1000
    assert stretched < unnormalised / 100
