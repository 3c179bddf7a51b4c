"""The native decoder is numerically the same network as upstream's diffusers-built UNet1024.

The reference is assembled from diffusers' public UNet blocks with upstream's
configuration (tests/helpers). diffusers is in the `test` extra, so a missing install
fails loudly instead of skipping; the library itself never imports it.
"""
import pytest
import torch
from helpers.decoder_pairs import assert_eight_passes_match_upstream, native_and_reference


@pytest.fixture(scope="module")
def both_networks():
    return native_and_reference(2)


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
    assert_eight_passes_match_upstream(ours, reference, seed=4, latent_channels=4, atol=1e-5)
