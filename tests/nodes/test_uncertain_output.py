"""Uncertain pixels through the nodes: the refine nodes' last output, the error map's
colour and the gate nodes' optional input."""
import json

import numpy as np
import torch

from comfyui_ld_portrait.nodes.matte import (LDPConnectivityRefine, LDPQualityGate, LDPQualityGateSimple,
                                             LDPRefineAlpha)
from comfyui_ld_portrait.refine.connectivity import refine_alpha
from comfyui_ld_portrait.base.errormap import UNCERTAIN_CYAN
from helpers.veiled_bust import SIZE, veiled_bust

#: The refine nodes' outputs before the 'uncertain' output, in order: saved workflows link them by position.
OUTPUTS_BEFORE = (("MASK", "alpha"), ("MASK", "changed"), ("IMAGE", "error_map"), ("STRING", "stats"))


def _mask(*alphas) -> torch.Tensor:
    return torch.from_numpy(np.stack(alphas))


def _colour(alpha) -> torch.Tensor:
    return torch.from_numpy(np.dstack([alpha * 0.8, alpha * 0.5, alpha * 0.3]).astype(np.float32))[None]


def test_uncertain_is_appended_after_the_existing_outputs():
    for node in (LDPRefineAlpha, LDPConnectivityRefine):
        declared = tuple(zip(node.RETURN_TYPES, node.RETURN_NAMES))
        assert declared[:4] == OUTPUTS_BEFORE
        assert declared[4:] == (("MASK", "uncertain"),)
        assert "kept the alpha as decoded" in node.OUTPUT_TOOLTIPS[4] and "quality gate" in node.OUTPUT_TOOLTIPS[4]


def test_refine_nodes_output_the_librarys_uncertain_mask():
    plain, veiled = veiled_bust(None), veiled_bust()
    expected = [refine_alpha(plain), refine_alpha(veiled)]
    assert not expected[0].uncertain.any() and expected[1].uncertain.any()
    for outputs in (LDPConnectivityRefine().refine(_mask(plain, veiled)),
                    LDPRefineAlpha().refine(torch.cat([_colour(plain), _colour(veiled)]), _mask(plain, veiled))):
        assert len(outputs) == 5
        uncertain = outputs[4]
        assert uncertain.shape == (2, SIZE, SIZE) and uncertain.dtype == torch.float32
        assert set(np.unique(uncertain.numpy())) <= {0.0, 1.0}
        for index in range(2):
            np.testing.assert_array_equal(uncertain[index].numpy() > 0.5, expected[index].uncertain)
            record = json.loads(outputs[3])[index]
            assert record["uncertain_pixels"] == int(expected[index].uncertain.sum())
        # The error map shows the uncertain pixels in their own colour.
        cyan = np.all(outputs[2][1].numpy() == np.array(UNCERTAIN_CYAN, np.float32), axis=-1)
        np.testing.assert_array_equal(cyan, expected[1].uncertain & ~expected[1].changed)


def test_gate_nodes_take_uncertain_as_their_last_input_and_reject_on_it():
    for node in (LDPQualityGateSimple, LDPQualityGate):
        optional = list(node.INPUT_TYPES()["optional"])
        assert optional[-1] == "uncertain" and node.INPUT_TYPES()["optional"]["uncertain"][0] == "MASK"
        assert optional.index("uncertain") > optional.index("invert")
    assert "max_uncertain_fraction" in LDPQualityGate.INPUT_TYPES()["optional"]
    veiled = veiled_bust()
    refined, changed, _, _, uncertain = LDPConnectivityRefine().refine(_mask(veiled))
    for gate, settings in ((LDPQualityGateSimple(), {"strictness": "standard"}), (LDPQualityGate(), {})):
        keep, kept, reasons, verdict = gate.judge(refined, raw_alpha=_mask(veiled), changed=changed,
                                                  uncertain=uncertain, **settings)
        assert keep is False and kept == 0 and "uncertain_matte" in reasons
        assert json.loads(verdict)[0]["measures"]["uncertain_fraction"] > 0.1
        # Without the mask the check is skipped (older workflows judge as before).
        keep, _, reasons, verdict = gate.judge(refined, raw_alpha=_mask(veiled), changed=changed, **settings)
        assert "uncertain_matte" not in reasons
        assert json.loads(verdict)[0]["measures"]["uncertain_fraction"] is None
    # The advanced gate's threshold widget reaches the library.
    keep, _, reasons, _ = LDPQualityGate().judge(refined, raw_alpha=_mask(veiled), changed=changed,
                                                 uncertain=uncertain, max_uncertain_fraction=0.5)
    assert "uncertain_matte" not in reasons
