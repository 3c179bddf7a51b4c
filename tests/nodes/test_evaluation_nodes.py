"""Trimap and metrics nodes: thin adapters, so they must give the library's results for tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from comfyui_ld_portrait import NODE_CLASS_MAPPINGS
from comfyui_ld_portrait.evaluation import evaluate_pair
from comfyui_ld_portrait.pipeline.synthetic import make_portrait
from comfyui_ld_portrait.base.trimap import trimap_from_alpha, trimap_from_mask

TrimapFromAlpha = NODE_CLASS_MAPPINGS["LDPTrimapFromAlpha"]
TrimapErodeDilate = NODE_CLASS_MAPPINGS["LDPTrimapErodeDilate"]
MatteMetrics = NODE_CLASS_MAPPINGS["LDPMatteMetrics"]


@pytest.fixture(scope="module")
def portraits():
    truth = [make_portrait(seed, 96).alpha_true for seed in (0, 1)]
    damaged = [make_portrait(seed, 96).alpha_artifacts for seed in (0, 1)]
    return np.stack(truth), np.stack(damaged)


def test_trimap_from_alpha_node_gives_the_library_codes(portraits):
    truth, _ = portraits
    mask, image = TrimapFromAlpha().make(torch.from_numpy(truth), 4.0, "pixels", False)
    assert mask.shape == (2, 96, 96) and image.shape == (2, 96, 96, 3)
    for index in range(2):
        codes = np.rint(mask[index].numpy() * 255).astype(np.uint8)
        assert np.array_equal(codes, trimap_from_alpha(truth[index], 4.0))
        assert torch.equal(image[index, ..., 1], mask[index])
    percent, _ = TrimapFromAlpha().make(torch.from_numpy(truth), 5.0, "percent of shorter side",
                                        False)
    expected = trimap_from_alpha(truth[0], band_fraction=0.05)
    assert np.array_equal(np.rint(percent[0].numpy() * 255).astype(np.uint8), expected)
    inverted, _ = TrimapFromAlpha().make(torch.from_numpy(1 - truth), 4.0, "pixels", True)
    assert torch.equal(inverted, mask)


def test_trimap_from_mask_node_gives_the_library_codes(portraits):
    truth, _ = portraits
    coarse = (truth > 0.5).astype(np.float32)
    mask, _ = TrimapErodeDilate().make(torch.from_numpy(coarse), 3.0, 6.0, False)
    for index in range(2):
        codes = np.rint(mask[index].numpy() * 255).astype(np.uint8)
        assert np.array_equal(codes, trimap_from_mask(coarse[index], 3.0, 6.0))
    assert set(np.unique(np.rint(mask.numpy() * 255))) == {0, 128, 255}


def test_the_erode_dilate_node_offers_the_unknown_value_as_a_choice(portraits):
    truth, _ = portraits
    coarse = (truth > 0.5).astype(np.float32)
    spec = TrimapErodeDilate.INPUT_TYPES()
    assert list(spec["required"]) == ["mask", "erode", "dilate", "invert"]  # saved widget order
    assert spec["optional"]["unknown"][0] == ["128/255", "0.5"]
    assert spec["optional"]["unknown"][1]["default"] == "128/255"
    codes, _ = TrimapErodeDilate().make(torch.from_numpy(coarse), 3.0, 6.0, False, "128/255")
    unit, image = TrimapErodeDilate().make(torch.from_numpy(coarse), 3.0, 6.0, False, unknown="0.5")
    for index in range(2):
        assert np.array_equal(unit[index].numpy(), trimap_from_mask(coarse[index], 3.0, 6.0, unknown=0.5))
        assert torch.equal(image[index, ..., 0], unit[index])
    assert torch.equal(unit == 0.5, (codes * 255).round() == 128)
    with pytest.raises(ValueError, match="unknown must be one of"):
        TrimapErodeDilate().make(torch.from_numpy(coarse), 3.0, 6.0, False, "half")


def test_trimap_from_mask_is_a_deprecated_alias_that_saved_graphs_still_run(portraits):
    """Saved graphs hold LDPTrimapFromMask with widgets [band, invert] and a link from its one
    output: the id, the inputs in their order and the output stay; it makes what Trimap By Erode
    / Dilate makes with erode = dilate = band and unknown 0.5."""
    from comfyui_ld_portrait import NODE_DISPLAY_NAME_MAPPINGS

    alias = NODE_CLASS_MAPPINGS["LDPTrimapFromMask"]
    assert alias.DEPRECATED is True and not getattr(TrimapErodeDilate, "DEPRECATED", False)
    name = NODE_DISPLAY_NAME_MAPPINGS["LDPTrimapFromMask"]
    assert "deprecated" in name and NODE_DISPLAY_NAME_MAPPINGS["LDPTrimapErodeDilate"].split(" (")[0] in name
    spec = alias.INPUT_TYPES()
    assert list(spec["required"]) == ["mask", "band"] and list(spec["optional"]) == ["invert"]
    assert spec["required"]["band"][0] == "INT" and alias.RETURN_TYPES == ("MASK",)
    truth, _ = portraits
    (trimap,) = alias().trimap(torch.from_numpy(1 - truth), 4, invert=True)
    expected, _ = TrimapErodeDilate().make(torch.from_numpy(truth), 4.0, 4.0, False, "0.5")
    assert torch.equal(trimap, expected)
    assert set(np.unique(trimap.numpy())) == {0.0, 0.5, 1.0}


def test_metrics_node_matches_the_library_and_reuses_a_single_reference(portraits):
    truth, damaged = portraits
    out = MatteMetrics().measure(torch.from_numpy(damaged), torch.from_numpy(truth[:1]), "dim",
                                 False)
    report, sad, mse, mad, grad, conn = out["result"]
    expected = [evaluate_pair(damaged[i], truth[0]) for i in range(2)]
    for name, value in zip(("sad", "mse", "mad", "grad", "conn"), (sad, mse, mad, grad, conn)):
        mean = np.mean([getattr(item, name) for item in expected])
        assert value == pytest.approx(mean, rel=1e-6), name
    assert out["ui"]["text"] == [report]
    assert "mean" in report and f"{expected[1].sad:10.5g}".strip() in report


def test_metrics_node_with_a_trimap_from_the_trimap_node(portraits):
    truth, damaged = portraits
    trimap, _ = TrimapFromAlpha().make(torch.from_numpy(truth), 6.0, "pixels", False)
    out = MatteMetrics().measure(torch.from_numpy(damaged), torch.from_numpy(truth), "dim",
                                 False, trimap=trimap)
    codes = trimap_from_alpha(truth[0], 6.0)
    first = evaluate_pair(damaged[0], truth[0], codes)
    second = evaluate_pair(damaged[1], truth[1], trimap_from_alpha(truth[1], 6.0))
    assert out["result"][1] == pytest.approx((first.sad + second.sad) / 2, rel=1e-6)
    whole_image = evaluate_pair(damaged[0], truth[0])
    assert first.sad < whole_image.sad  # the region really is restricted


def test_metrics_node_whole_protocol_and_its_refusal_of_a_trimap(portraits):
    truth, damaged = portraits
    out = MatteMetrics().measure(torch.from_numpy(damaged[:1]), torch.from_numpy(truth[:1]),
                                 "whole", False)
    assert out["result"][4] == pytest.approx(
        evaluate_pair(damaged[0], truth[0], protocol="whole").grad, rel=1e-6)
    with pytest.raises(ValueError, match="whole protocol"):
        MatteMetrics().measure(torch.from_numpy(damaged), torch.from_numpy(truth), "whole", False,
                               trimap=torch.zeros(2, 96, 96))


def test_metrics_node_reports_nan_for_an_empty_unknown_region(portraits):
    truth, damaged = portraits
    out = MatteMetrics().measure(torch.from_numpy(damaged[:1]), torch.from_numpy(truth[:1]), "dim",
                                 False, trimap=torch.ones(1, 96, 96))
    assert math.isnan(out["result"][2]) and out["result"][1] == 0.0


def test_metrics_node_refuses_mismatched_sizes_and_batches(portraits):
    truth, damaged = portraits
    with pytest.raises(ValueError, match="same size"):
        MatteMetrics().measure(torch.zeros(1, 96, 90), torch.from_numpy(truth[:1]), "dim", False)
    with pytest.raises(ValueError, match="batch"):
        MatteMetrics().measure(torch.zeros(3, 96, 96), torch.from_numpy(truth), "dim", False)
