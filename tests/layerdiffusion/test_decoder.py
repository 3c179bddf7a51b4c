"""Transparent decoder network layout and strict safetensors loading (random weights)."""
import math

import pytest
import safetensors.torch
import torch

from comfyui_ld_portrait.layerdiffusion.decoder import (
    EXPECTED_PARAMETER_COUNT,
    EXPECTED_TENSOR_COUNT,
    TransparentDecoderUNet,
    decoder_state_dict_shapes,
    random_decoder_state_dict,
)
from comfyui_ld_portrait.layerdiffusion.weights import (
    DECODER_FILE_NAME,
    WeightFileError,
    check_decoder_state_dict,
    load_transparent_decoder,
    read_safetensors,
)


@pytest.fixture(scope="module")
def state_dict():
    return random_decoder_state_dict()


@pytest.fixture(scope="module")
def decoder_file(state_dict, tmp_path_factory):
    # Half precision like the published file (about 208 MB instead of 416 MB).
    path = tmp_path_factory.mktemp("weights") / DECODER_FILE_NAME
    safetensors.torch.save_file({k: v.half() for k, v in state_dict.items()}, str(path))
    return path


def test_layout_is_the_published_one():
    shapes = decoder_state_dict_shapes()
    assert len(shapes) == EXPECTED_TENSOR_COUNT == 538
    assert sum(math.prod(s) for s in shapes.values()) == EXPECTED_PARAMETER_COUNT
    assert shapes["conv_in.weight"] == (32, 3, 3, 3)
    assert shapes["latent_conv_in.weight"] == (64, 4, 1, 1)
    assert shapes["down_blocks.4.attentions.0.to_q.weight"] == (256, 256)
    assert shapes["down_blocks.6.attentions.1.to_out.0.bias"] == (512,)
    assert shapes["mid_block.resnets.1.conv2.bias"] == (512,)
    assert shapes["mid_block.attentions.0.group_norm.weight"] == (512,)
    assert shapes["up_blocks.0.resnets.0.conv1.weight"] == (512, 1024, 3, 3)
    assert shapes["up_blocks.6.resnets.2.conv_shortcut.weight"] == (32, 64, 1, 1)
    assert shapes["up_blocks.5.upsamplers.0.conv.weight"] == (32, 32, 3, 3)
    assert shapes["conv_out.weight"] == (4, 32, 3, 3)
    assert not any(k.startswith("down_blocks.6.downsamplers") for k in shapes)
    assert not any(k.startswith("up_blocks.6.upsamplers") for k in shapes)
    assert not any(k.startswith(("down_blocks.3.attentions", "up_blocks.3.attentions")) for k in shapes)


def test_latent_input_conv_starts_at_zero():
    network = TransparentDecoderUNet()
    assert torch.count_nonzero(network.latent_conv_in.weight) == 0
    assert torch.count_nonzero(network.latent_conv_in.bias) == 0


def test_file_loads_strictly_with_the_files_values(decoder_file, state_dict):
    network = load_transparent_decoder(decoder_file)
    loaded = network.state_dict()
    assert list(loaded) == list(decoder_state_dict_shapes())
    for name in ("conv_in.weight", "down_blocks.4.attentions.0.to_q.weight", "mid_block.resnets.1.conv2.bias"):
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], state_dict[name].half().float())
    assert not network.training
    assert not any(p.requires_grad for p in network.parameters())
    # The network runs at a non-square multiple of 64 and keeps the spatial size.
    with torch.inference_mode():
        out = network(torch.rand(1, 3, 64, 128), torch.randn(1, 4, 8, 16))
    assert out.shape == (1, 4, 64, 128)
    assert torch.isfinite(out).all()


def test_truncated_file_gives_clear_error(decoder_file, tmp_path):
    data = decoder_file.read_bytes()
    broken = tmp_path / "vae_transparent_decoder.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match="truncated") as info:
        load_transparent_decoder(broken)
    assert DECODER_FILE_NAME in str(info.value)


def test_garbage_and_empty_files_give_clear_errors(tmp_path):
    for content in (b"", b"not a weight file at all", b"\xff" * 64):
        path = tmp_path / "x.safetensors"
        path.write_bytes(content)
        with pytest.raises(WeightFileError, match="not a valid safetensors"):
            read_safetensors(path, expected_name=DECODER_FILE_NAME)


def test_pickle_file_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "decoder.ckpt"
    torch.save({"conv_in.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightFileError, match="pickle"):
        load_transparent_decoder(path)


def test_missing_file_names_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=DECODER_FILE_NAME):
        load_transparent_decoder(tmp_path / "nope.safetensors")


def test_patch_file_given_as_decoder_is_named(tmp_path):
    path = tmp_path / "layer_xl_transparent_attn.safetensors"
    key = "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"
    safetensors.torch.save_file(
        {f"{key}::lora::0": torch.zeros(8, 2), f"{key}::lora::1": torch.zeros(2, 8)}, str(path)
    )
    with pytest.raises(WeightFileError) as info:
        load_transparent_decoder(path)
    message = str(info.value)
    assert "patch file" in message
    assert "Missing 538" in message
    assert DECODER_FILE_NAME in message


def test_sd_vae_and_checkpoint_given_as_decoder_are_named():
    vae_like = {
        "encoder.conv_in.weight": torch.zeros(128, 3, 3, 3),
        "decoder.conv_out.weight": torch.zeros(3, 128, 3, 3),
        "decoder.up.0.block.0.conv1.weight": torch.zeros(1),
    }
    with pytest.raises(WeightFileError, match="ordinary VAE"):
        check_decoder_state_dict(vae_like)
    checkpoint_like = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "first_stage_model.decoder.conv_out.weight": torch.zeros(3, 128, 3, 3),
    }
    with pytest.raises(WeightFileError, match="Stable Diffusion checkpoint"):
        check_decoder_state_dict(checkpoint_like)


def test_missing_unexpected_and_misshaped_keys_are_listed(state_dict):
    broken = dict(state_dict)
    del broken["mid_block.resnets.1.conv2.bias"]
    broken["down_blocks.4.attentions.0.to_q.weight"] = torch.zeros(128, 256)
    broken["extra.weight"] = torch.zeros(3)
    with pytest.raises(WeightFileError) as info:
        load_transparent_decoder(broken)
    message = str(info.value)
    assert "Missing 1: mid_block.resnets.1.conv2.bias" in message
    assert "Unexpected 1: extra.weight" in message
    assert "Wrong shape 1: down_blocks.4.attentions.0.to_q.weight (128, 256) (expected (256, 256))" in message
    assert "modified or incomplete transparent decoder" in message


def test_long_key_lists_are_abbreviated(state_dict):
    partial = {k: v for i, (k, v) in enumerate(state_dict.items()) if i % 2 == 0}
    with pytest.raises(WeightFileError) as info:
        check_decoder_state_dict(partial)
    assert "Missing 269" in str(info.value)
    assert "... and 264 more" in str(info.value)


def test_half_precision_on_cpu_is_refused(state_dict):
    with pytest.raises(ValueError, match="float32 on CPU"):
        load_transparent_decoder(state_dict, dtype=torch.float16)
