"""Flux Layer Diffusion: 16-channel decoder/encoder against the reference, safe conversion of the
pickled TransparentVAE.pth, NaN weights named.

The references are re-statements of RedAIGC/Flux-version-LayerDiffuse ``lib_layerdiffuse/vae.py``:
the decoder is UNet1024(latent_c=16) built from diffusers' blocks (tests/helpers), its
``estimate_augmented`` is the 8-orientation loop; the encoder is a plain Sequential of the
published convolutions fed ``cat([padded_rgb, alpha])`` and scaled by 300.
"""
import pickle

import pytest
import safetensors.torch
import torch
from helpers.decoder_pairs import assert_eight_passes_match_upstream, native_and_reference
from helpers.decoder_reference import random_network_state
from torch import nn

from comfyui_ld_portrait.cli import models as cli_models
from comfyui_ld_portrait.layerdiffusion import model_files
from comfyui_ld_portrait.layerdiffusion.convert import (
    ConversionError,
    convert_transparent_vae,
    read_pickled_state_dict,
)
from comfyui_ld_portrait.layerdiffusion.decoder import random_decoder_state_dict
from comfyui_ld_portrait.layerdiffusion.encoder import (
    encoder_state_dict_shapes,
    latent_offset,
    load_transparent_encoder,
)
from comfyui_ld_portrait.layerdiffusion.tta import NonFiniteDecodeError, decode_transparent
from comfyui_ld_portrait.layerdiffusion.weights import WeightFileError, load_transparent_decoder


def random_encoder_state(seed: int, latent_channels: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) * 0.05
            for name, shape in encoder_state_dict_shapes(latent_channels).items()}


def reference_offset_encoder(latent_c: int) -> nn.Module:
    """LatentTransparencyOffsetEncoder as published: 9 convs, SiLU between, 3 of stride 2."""
    convs = [(4, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1),
             (128, 256, 2), (256, 256, 1), (256, latent_c, 1)]
    layers = []
    for i, (cin, cout, stride) in enumerate(convs):
        layers.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1, stride=stride))
        if i < len(convs) - 1:
            layers.append(nn.SiLU())
    module = nn.Module()
    module.blocks = nn.Sequential(*layers)
    return module


@pytest.fixture(scope="module")
def flux_networks():
    return native_and_reference(5, latent_channels=16)


def test_decoder_infers_sixteen_latent_channels(flux_networks):
    ours, _ = flux_networks
    assert ours.latent_channels == 16
    assert tuple(ours.latent_conv_in.weight.shape) == (64, 16, 1, 1)
    sd = load_transparent_decoder(random_network_state(1))
    assert sd.latent_channels == 4


def test_flux_eight_pass_decode_equals_reference_estimate_augmented(flux_networks):
    ours, reference = flux_networks
    expected = assert_eight_passes_match_upstream(ours, reference, seed=6, latent_channels=16, atol=1e-4)
    assert expected[:, 0].std() > 0.01  # a structured alpha, not a constant


def test_flux_latent_decodes_any_size_with_fewer_passes_and_hooks(flux_networks):
    ours, _ = flux_networks
    generator = torch.Generator().manual_seed(7)
    image = torch.rand(2, 3, 40, 72, generator=generator)  # not multiples of 64: padded
    latent = torch.randn(2, 16, 5, 9, generator=generator)
    calls = []
    out = decode_transparent(ours, image, latent, passes=2, on_pass=lambda d, t: calls.append((d, t)))
    assert out.shape == (2, 4, 40, 72) and calls[-1] == (4, 4)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_latent_of_the_other_family_is_refused_clearly(flux_networks):
    ours, _ = flux_networks
    with pytest.raises(ValueError, match=r"\[B, 16, H/8, W/8\].*Flux.*got shape \(1, 4, 8, 8\)"):
        decode_transparent(ours, torch.rand(1, 3, 64, 64), torch.randn(1, 4, 8, 8), passes=1)
    sd = load_transparent_decoder(random_network_state(1))
    with pytest.raises(ValueError, match=r"\[B, 4, H/8, W/8\].*SD1.5/SDXL"):
        decode_transparent(sd, torch.rand(1, 3, 64, 64), torch.randn(1, 16, 8, 8), passes=1)


def test_unsupported_latent_channel_count_is_refused():
    state = random_decoder_state_dict(0)
    state["latent_conv_in.weight"] = torch.zeros(64, 8, 1, 1)
    with pytest.raises(WeightFileError, match=r"latent_conv_in.weight \(64, 8, 1, 1\) \(expected \(64, 4, 1, 1\)\)"):
        load_transparent_decoder(state)


def test_flux_encoder_offset_equals_reference():
    state = random_encoder_state(8, 16)
    reference = reference_offset_encoder(16).eval()
    reference.load_state_dict(state, strict=True)
    ours = load_transparent_encoder(state)
    assert ours.latent_channels == 16 and ours.input_order == "rgb_alpha"
    generator = torch.Generator().manual_seed(9)
    alpha = torch.rand(2, 1, 64, 48, generator=generator)
    padded_rgb = torch.rand(2, 3, 64, 48, generator=generator)
    with torch.inference_mode():
        expected = reference.blocks(torch.cat([padded_rgb, alpha], dim=1)) * 300.0
    actual = latent_offset(ours, alpha, padded_rgb)
    assert actual.shape == (2, 16, 8, 6)
    assert expected.abs().max() > 1.0
    assert (actual - expected).abs().max().item() <= 1e-4 * expected.abs().max().item()
    # The SD encoder keeps alpha first and scale 1 (Forge), so the order really is per family.
    sd_state = random_encoder_state(8, 4)
    sd_reference = reference_offset_encoder(4).eval()
    sd_reference.load_state_dict(sd_state)
    with torch.inference_mode():
        sd_expected = sd_reference.blocks(torch.cat([alpha, padded_rgb], dim=1))
    assert torch.allclose(latent_offset(load_transparent_encoder(sd_state), alpha, padded_rgb),
                          sd_expected, atol=1e-5)


def test_flux_raw_latent_is_what_the_reference_decodes():
    # The reference turns the pipeline's latent x into x / scaling_factor + shift_factor before
    # decoding; ComfyUI's sampler returns latent_format.process_out(x), the same expression
    # with the same constants (tests/host checks process_out on the host itself).
    assert (model_files.FLUX_VAE_SCALING_FACTOR, model_files.FLUX_VAE_SHIFT_FACTOR) == (0.3611, 0.1159)


# --- conversion ---------------------------------------------------------------------------------

def transparent_vae_state(seed=3):
    """A state dict in the reference TransparentVAE module layout (sd_vae + encoder + decoder)."""
    state = {f"decoder.{k}": v.half() for k, v in random_network_state(seed, latent_channels=16).items()}
    state.update({f"encoder.{k}": v.half() for k, v in random_encoder_state(seed, 16).items()})
    state["sd_vae.encoder.conv_in.weight"] = torch.zeros(128, 3, 3, 3, dtype=torch.float16)
    return state


def test_pth_in_the_reference_layout_converts_and_loads(tmp_path):
    state = transparent_vae_state()
    source = tmp_path / "TransparentVAE.pth"
    torch.save(state, source)
    out = tmp_path / "layer_model"
    result = convert_transparent_vae(source, out)
    assert result.latent_channels == 16 and result.ignored == ("sd_vae",)
    assert result.decoder_path.name == model_files.MODEL_FILES["flux_decoder"].file_name
    assert result.encoder_path.name == model_files.MODEL_FILES["flux_encoder"].file_name
    written = safetensors.torch.load_file(str(result.decoder_path))
    assert len(written) == 538
    assert torch.equal(written["latent_conv_in.weight"], state["decoder.latent_conv_in.weight"])
    decoder = load_transparent_decoder(result.decoder_path)
    encoder = load_transparent_encoder(result.encoder_path)
    assert decoder.latent_channels == 16 and encoder.latent_channels == 16
    assert sorted(p.name for p in out.iterdir()) == sorted([result.decoder_path.name, result.encoder_path.name])
    with pytest.raises(FileExistsError, match="--force"):
        convert_transparent_vae(source, out)


def test_convert_command(tmp_path):
    source = tmp_path / "TransparentVAE.pth"
    torch.save(transparent_vae_state(), source)
    import argparse
    import io

    parser = argparse.ArgumentParser()
    cli_models.register(parser.add_subparsers())
    out, err = io.StringIO(), io.StringIO()
    args = parser.parse_args(["models", "convert", str(source), str(tmp_path / "o")])
    assert args.handler(args, out, err) == 0, err.getvalue()
    assert "16 latent channels" in out.getvalue()
    args = parser.parse_args(["models", "convert", str(source), str(tmp_path / "o")])
    assert args.handler(args, out, err) == 1 and "--force" in err.getvalue()


class _Payload:
    """Unpickling this creates the marker file (stands in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    state = transparent_vae_state()
    state["decoder.conv_in.weight"] = _Payload(marker)
    source = tmp_path / "TransparentVAE.pth"
    torch.save(state, source)
    with pytest.raises(ConversionError, match="needs more than tensors.*nothing in it was run"):
        convert_transparent_vae(source, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    # The payload is live: an ordinary unpickler would have created the marker.
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_Payload(live))).close()
    assert live.exists()


def test_wrong_contents_are_refused(tmp_path):
    source = tmp_path / "other.pth"
    torch.save({"model.weight": torch.zeros(2)}, source)
    with pytest.raises(ConversionError, match="not a transparent VAE.*unknown names: model.weight"):
        convert_transparent_vae(source, tmp_path / "out")
    torch.save([torch.zeros(2)], source)
    with pytest.raises(ConversionError, match="holds list"):
        read_pickled_state_dict(source)
    state = transparent_vae_state()
    state["encoder.blocks.16.weight"] = torch.zeros(4, 256, 3, 3)
    state["encoder.blocks.16.bias"] = torch.zeros(4)
    torch.save(state, source)
    with pytest.raises(ConversionError, match="decoder takes 16 latent channels but the encoder gives 4"):
        convert_transparent_vae(source, tmp_path / "out")


# --- NaN weights ---------------------------------------------------------------------------------

def test_nan_weights_are_refused_naming_the_file(tmp_path):
    state = random_decoder_state_dict(0)
    state["up_blocks.2.resnets.1.conv1.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "vae_transparent_decoder.safetensors"
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(WeightFileError, match=r"vae_transparent_decoder.safetensors.*NaN.*up_blocks.2.resnets.1.conv1.weight"):
        load_transparent_decoder(path)


def test_nan_decode_names_the_weight_file_not_the_input(tmp_path):
    path = tmp_path / "flux_vae_transparent_decoder.safetensors"
    safetensors.torch.save_file(random_network_state(0, latent_channels=16), str(path))
    network = load_transparent_decoder(path)
    with torch.no_grad():
        network.mid_block.resnets[0].conv1.bias[0] = float("inf")  # damaged after loading
    image, latent = torch.rand(1, 3, 64, 64), torch.randn(1, 16, 8, 8)
    with pytest.raises(NonFiniteDecodeError, match=r"flux_vae_transparent_decoder.safetensors.*damaged.*not the input"):
        decode_transparent(network, image, latent, passes=1)
