"""The native decoder is numerically the same network as upstream's diffusers-built UNet1024.

The reference is assembled from diffusers' public UNet blocks with upstream's
configuration (tests/helpers). diffusers is in the `test` extra, so a missing install
fails loudly instead of skipping; the library itself never imports it.
"""
import pytest
import torch
from helpers.decoder_reference import build_diffusers_reference, random_network_state, upstream_augmented

from comfyui_ld_portrait.layerdiffusion.tta import decode_transparent
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def both_networks():
    state = random_network_state(2)
    reference = build_diffusers_reference().eval()
    reference.load_state_dict(state, strict=True)  # same names and shapes, both directions
    ours = load_transparent_decoder({k: v.clone() for k, v in state.items()})
    return ours, reference


def test_same_state_dict_layout(both_networks):
    ours, reference = both_networks
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours_shapes == ref_shapes
    assert len(ref_shapes) == 538


def test_single_pass_matches_diffusers_reference_non_square(both_networks):
    ours, reference = both_networks
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 128, 192, generator=generator)
    latent = torch.randn(2, 4, 16, 24, generator=generator)
    with torch.inference_mode():
        expected = reference(image, latent)
        actual = ours(image, latent)
    assert expected.abs().max() > 0.1  # a non-trivial output
    assert (actual - expected).abs().max().item() <= 1e-5


def test_eight_pass_decode_matches_upstream_loop_on_reference(both_networks):
    ours, reference = both_networks
    generator = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, 64, 128, generator=generator)
    latent = torch.randn(1, 4, 8, 16, generator=generator)
    expected = upstream_augmented(reference, image, latent)
    for strategy in ("sequential", "batched"):
        actual = decode_transparent(ours, image, latent, passes=8, strategy=strategy)
        assert (actual - expected).abs().max().item() <= 1e-5, strategy
