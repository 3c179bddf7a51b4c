"""The native decoder beside the diffusers-built upstream reference with the same weights, and
the 8-pass comparison both the SD (tests/layerdiffusion/test_reference.py) and the Flux
(test_flux.py) decoder tests make."""
from __future__ import annotations

import torch
from helpers.decoder_reference import build_diffusers_reference, random_network_state, upstream_augmented

from comfyui_ld_portrait.layerdiffusion.tta import decode_transparent
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder


def native_and_reference(seed: int, latent_channels: int = 4) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(our decoder, upstream's reference network), both holding ``random_network_state(seed)``;
    the reference loads it strictly, so names and shapes agree in both directions."""
    state = random_network_state(seed, latent_channels=latent_channels)
    reference = build_diffusers_reference(latent_channels=latent_channels).eval()
    reference.load_state_dict(state, strict=True)
    ours = load_transparent_decoder({k: v.clone() for k, v in state.items()})
    return ours, reference


def assert_eight_passes_match_upstream(ours, reference, *, seed: int, latent_channels: int,
                                       atol: float) -> torch.Tensor:
    """Decode a seeded 64x128 image and latent [1, latent_channels, 8, 16] with 8 passes, both
    strategies, and check every value against upstream's ``estimate_augmented`` loop run on the
    reference to ``atol``. Returns the reference result [1, 4, 64, 128] (alpha first)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, 64, 128, generator=generator)
    latent = torch.randn(1, latent_channels, 8, 16, generator=generator)
    expected = upstream_augmented(reference, image, latent)
    for strategy in ("sequential", "batched"):
        actual = decode_transparent(ours, image, latent, passes=8, strategy=strategy)
        assert (actual - expected).abs().max().item() <= atol, strategy
    return expected
