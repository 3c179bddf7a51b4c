"""Transparent encoder (RGBA -> latent offset): layout, strict loading, shapes."""
import pytest
import safetensors.torch
import torch
from torch import nn

from comfyui_ld_portrait.layerdiffusion.encoder import (
    encoder_state_dict_shapes,
    latent_offset,
    load_transparent_encoder,
    regulate_latent,
)
from comfyui_ld_portrait.layerdiffusion.weights import ENCODER_FILE_NAME, WeightFileError


def upstream_layout():
    """Upstream's encoder as a plain Sequential: conv/SiLU pairs, strides at 3 convolutions."""
    plan = [(4, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1),
            (128, 256, 2), (256, 256, 1), (256, 4, 1)]
    layers = []
    for cin, cout, stride in plan:
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.SiLU()]
    model = nn.Module()
    model.blocks = nn.Sequential(*layers[:-1])
    return model


def test_layout_matches_upstream():
    shapes = encoder_state_dict_shapes()
    expected = {k: tuple(v.shape) for k, v in upstream_layout().state_dict().items()}
    assert shapes == expected
    assert len(shapes) == 18 and shapes["blocks.16.weight"] == (4, 256, 3, 3)


def test_loaded_encoder_matches_reference_and_regulates(tmp_path):
    torch.manual_seed(0)
    reference = upstream_layout().eval()
    path = tmp_path / ENCODER_FILE_NAME
    safetensors.torch.save_file(reference.state_dict(), str(path))
    encoder = load_transparent_encoder(path)
    alpha = torch.rand(2, 1, 32, 48)
    rgb = torch.rand(2, 3, 32, 48)
    offset = latent_offset(encoder, alpha, rgb)
    with torch.no_grad():
        expected = reference.blocks(torch.cat([alpha, rgb], dim=1))
    assert offset.shape == (2, 4, 4, 6)
    assert torch.allclose(offset, expected, atol=1e-6) and offset.abs().max() > 0
    assert torch.allclose(latent_offset(encoder, alpha[:, 0], rgb, offset_scale=300.0), expected * 300, atol=1e-4)
    mean, std = torch.randn(2, 4, 4, 6), torch.rand(2, 4, 4, 6)
    assert torch.equal(regulate_latent(mean, std, offset), mean + std * offset)


def test_encoder_errors(tmp_path):
    encoder = load_transparent_encoder({k: torch.zeros(s) for k, s in encoder_state_dict_shapes().items()})
    with pytest.raises(ValueError, match="multiple of 8"):
        latent_offset(encoder, torch.rand(1, 1, 30, 32), torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="differ"):
        latent_offset(encoder, torch.rand(1, 1, 32, 32), torch.rand(2, 3, 32, 32))
    wrong = tmp_path / "vae_transparent_decoder.safetensors"
    safetensors.torch.save_file({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(2)}, str(wrong))
    with pytest.raises(WeightFileError, match=ENCODER_FILE_NAME):
        load_transparent_encoder(wrong)


def test_loaded_weights_do_not_depend_on_the_file(tmp_path):
    # safetensors maps files lazily; overwriting the file in place must not change (or crash)
    # a loaded network.
    torch.manual_seed(1)
    state = upstream_layout().state_dict()
    path = tmp_path / ENCODER_FILE_NAME
    safetensors.torch.save_file(state, str(path))
    encoder = load_transparent_encoder(path)
    data = path.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    with open(path, "r+b") as handle:  # same size, same header, zero payload, in place
        handle.seek(header)
        handle.write(bytes(len(data) - header))
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, state[name]), name
