"""The ``dim`` and ``whole`` protocols: definitions, the P3M reference values, bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfyui_ld_portrait.evaluation import MattingErrors, evaluate_pair, metrics
from comfyui_ld_portrait.evaluation.protocols import as_p3m_matte

FIXTURES = Path(__file__).parent / "fixtures"
P3M = json.loads((FIXTURES / "p3m_whole.json").read_text())


def _load(name):
    return [cv2.imread(str(FIXTURES / f"{name}_{suffix}.png"), cv2.IMREAD_UNCHANGED)
            for suffix in ("pred", "truth", "trimap")]


@pytest.mark.parametrize("name", sorted(P3M["cases"]))
def test_whole_protocol_matches_p3m_code(name):
    """Values recorded from JizhiziLi/P3M core/evaluate.py itself (reference_ports.py)."""
    pred, truth, _ = _load(name)
    reference = P3M["cases"][name]
    for inputs in ((pred, truth), (pred.astype(np.float32) / 255, truth.astype(np.float32) / 255)):
        errors = evaluate_pair(*inputs, protocol="whole")
        for key in ("sad", "mse", "mad", "grad", "conn"):
            assert getattr(errors, key) == pytest.approx(reference[key], rel=1e-5, abs=1e-12), \
                (name, key)


def test_whole_and_dim_differ_where_the_protocols_do():
    pred, truth, _ = _load("prediction_empty")
    whole = evaluate_pair(pred, truth, protocol="whole")
    dim = evaluate_pair(pred, truth, protocol="dim")  # no trimap: every pixel too
    assert whole.sad == pytest.approx(dim.sad) and whole.mse == pytest.approx(dim.mse)
    # An empty prediction shares no component with the truth at any threshold: P3M skips
    # them all (every level 1, no connectivity error), DIM assigns level 0 (a large error).
    assert whole.conn == 0.0 and dim.conn > 0.5


def test_constant_error_over_the_region():
    truth = np.zeros((40, 50), np.float32)
    truth[10:30, 10:40] = 1.0
    pred = np.clip(truth + 0.1, 0, 1) * (truth < 1) + truth * (truth >= 1)  # +0.1 where 0
    trimap = np.zeros((40, 50), np.uint8)
    trimap[:, :20] = 128  # 800 pixels, 600 of them background (error 0.1), 200 foreground
    errors = evaluate_pair(pred, truth, trimap)
    assert errors.sad == pytest.approx(600 * 0.1 / 1000, rel=1e-6)
    assert errors.mse == pytest.approx(600 * 0.01 / 800, rel=1e-5)
    assert errors.mad == pytest.approx(600 * 0.1 / 800, rel=1e-6)


def test_identical_mattes_score_zero():
    rng = np.random.default_rng(7)
    matte = rng.random((33, 41)).astype(np.float32)
    for protocol in ("dim", "whole"):
        errors = evaluate_pair(matte, matte.copy(), protocol=protocol)
        assert errors == MattingErrors(0.0, 0.0, 0.0, 0.0, 0.0)


def test_empty_unknown_region_gives_nan_means_and_zero_sums():
    pred = np.full((8, 8), 0.3, np.float32)
    truth = np.zeros((8, 8), np.float32)
    errors = evaluate_pair(pred, truth, np.zeros((8, 8), np.uint8))
    assert errors.sad == 0 and errors.grad == 0 and errors.conn == 0
    assert math.isnan(errors.mse) and math.isnan(errors.mad)


def test_largest_component_never_takes_the_background():
    mask = np.zeros((20, 20), bool)
    mask[2:5, 2:5] = True   # 9 px foreground against 391 px of background
    mask[10:12, 10:12] = True
    component = metrics.largest_component(mask)
    assert component.sum() == 9 and component[3, 3]
    assert metrics.largest_component(np.zeros((5, 5), bool)) is None


def test_gradient_kernel_is_the_documented_one():
    smooth, derivative = metrics.gaussian_gradient_kernel(1.4)
    kernel = np.outer(smooth, derivative)
    assert kernel.shape == (9, 9)
    assert np.sum(kernel ** 2) == pytest.approx(1.0)
    assert np.allclose(kernel, -kernel[:, ::-1]) and np.allclose(kernel, kernel[::-1, :])
    # x-derivative: a horizontal ramp has a gradient, a vertical one is seen by gy only.
    ramp = np.tile(np.arange(20, dtype=np.float64), (20, 1))
    assert metrics.gradient_magnitude(ramp)[10, 10] > 0
    assert np.allclose(metrics.gradient_magnitude(ramp), metrics.gradient_magnitude(ramp.T).T)


def test_p3m_matte_snaps_8bit_data_only():
    codes = np.arange(256, dtype=np.float32) / 255
    assert np.array_equal(as_p3m_matte(codes), np.arange(256) / 255.0)
    off_grid = np.array([0.123456], np.float32)
    assert as_p3m_matte(off_grid)[0] == pytest.approx(0.123456, rel=1e-6)


@pytest.mark.parametrize("pred, truth, trimap, protocol, message", [
    (np.zeros((4, 5)), np.zeros((5, 4)), None, "dim", "same size"),
    (np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((3, 3), np.uint8), "dim", "trimap is 3x3"),
    (np.full((4, 4), np.nan), np.zeros((4, 4)), None, "dim", "NaN"),
    (np.full((4, 4), 3.0), np.zeros((4, 4)), None, "dim", "expected 0..1"),
    (np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4), np.uint8), "whole", "no trimap"),
    (np.zeros((4, 4)), np.zeros((4, 4)), None, "sad", "unknown protocol"),
    (np.zeros((4, 4, 3)), np.zeros((4, 4)), None, "dim", "2-D"),
])
def test_bad_input_is_refused_with_a_reason(pred, truth, trimap, protocol, message):
    with pytest.raises(ValueError, match=message):
        evaluate_pair(pred, truth, trimap, protocol=protocol)
