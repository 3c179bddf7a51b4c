"""Layer Diffusion UNet patch files folded into ("diff", ...) patches."""
import pytest
import safetensors.torch
import torch
from helpers.tiny_unet import CONV, K2, NORM, PREFIX, PROJ_IN, Q, tiny_patch_entries, tiny_sdxl_like_model

from comfyui_ld_portrait.layerdiffusion.patches import (
    apply_patches_to_state_dict,
    check_patch_targets,
    load_patches,
    patches_from_state_dict,
    read_patch_file,
)
from comfyui_ld_portrait.layerdiffusion.weights import WeightFileError


def small_sdxl_like_model():
    """The tiny SDXL-style module with a 1x1 conv (``proj_in``) patched by 2-D factors too."""
    return tiny_sdxl_like_model(proj_in=True)


def patch_entries():
    return tiny_patch_entries(proj_in=True, k2_alpha=6.0)  # K2 alpha: scale 6 / rank 3 = 2


@pytest.fixture()
def patch_file(tmp_path):
    path = tmp_path / "layer_xl_transparent_attn.safetensors"
    entries = patch_entries()
    safetensors.torch.save_file(entries, str(path))
    return path, entries


def test_application_gives_w_plus_up_down_times_strength(patch_file):
    path, e = patch_file
    model = small_sdxl_like_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    strength = 0.7
    patches = load_patches(path, strength, target_shapes=model.state_dict())
    assert all(kind == "diff" and len(t) == 1 for kind, t in patches.values())
    model.load_state_dict(apply_patches_to_state_dict(model.state_dict(), patches))
    after = model.state_dict()

    def lora(key):
        return e[f"{PREFIX}{key}.weight::lora::0"].flatten(1) @ e[f"{PREFIX}{key}.weight::lora::1"].flatten(1)

    assert torch.equal(after[PREFIX + Q + ".weight"], before[PREFIX + Q + ".weight"] + lora(Q) * strength)
    assert torch.equal(
        after[PREFIX + K2 + ".weight"], before[PREFIX + K2 + ".weight"] + lora(K2) * 2.0 * strength
    )
    assert torch.equal(
        after[PREFIX + PROJ_IN + ".weight"],
        before[PREFIX + PROJ_IN + ".weight"] + (lora(PROJ_IN) * strength).reshape(16, 16, 1, 1),
    )
    assert torch.equal(
        after[PREFIX + CONV + ".weight"],
        before[PREFIX + CONV + ".weight"] + (lora(CONV) * strength).reshape(8, 4, 3, 3),
    )
    assert torch.equal(
        after[PREFIX + CONV + ".bias"],
        before[PREFIX + CONV + ".bias"] + e[f"{PREFIX}{CONV}.bias::diff::0"] * strength,
    )
    assert torch.equal(
        after[PREFIX + NORM + ".weight"],
        before[PREFIX + NORM + ".weight"] + e[f"{PREFIX}{NORM}.weight::diff::0"] * strength,
    )
    # Unpatched weights are untouched; the input state dict is not modified.
    assert torch.equal(after[PREFIX + PROJ_IN + ".bias"], before[PREFIX + PROJ_IN + ".bias"])


def test_without_targets_conv_lora_takes_the_conv_shape():
    patches = patches_from_state_dict(patch_entries(), 1.0)
    assert patches[PREFIX + CONV + ".weight"][1][0].shape == (8, 4, 3, 3)
    assert patches[PREFIX + Q + ".weight"][1][0].shape == (16, 16)


def test_strength_zero_and_half_precision_files():
    entries = {k: v.half() for k, v in patch_entries().items()}
    patches = patches_from_state_dict(entries, 0.0)
    assert all(torch.count_nonzero(t[0]) == 0 for _, t in patches.values())
    patches = patches_from_state_dict(entries, 1.0)
    assert all(t[0].dtype == torch.float16 for _, t in patches.values())
    patches = patches_from_state_dict(entries, 1.0, dtype=torch.float32)
    assert all(t[0].dtype == torch.float32 for _, t in patches.values())


def test_missing_keys_and_shape_mismatch_are_clear_errors():
    entries = patch_entries()
    model = small_sdxl_like_model()
    # An "SD1.5 file meets SDXL": one weight absent, another with other channel counts.
    sd15_like = dict(entries)
    sd15_like[f"{PREFIX}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight::lora::0"] = torch.zeros(16, 3)
    sd15_like[f"{PREFIX}input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight::lora::1"] = torch.zeros(3, 16)
    sd15_like[f"{PREFIX}{NORM}.weight::diff::0"] = torch.zeros(320)
    with pytest.raises(WeightFileError) as info:
        check_patch_targets(sd15_like, model.state_dict(), source="layer_sd15_x.safetensors")
    message = str(info.value)
    assert "1 weights do not exist in the model: diffusion_model.input_blocks.1.1" in message
    assert f"{PREFIX}{NORM}.weight (diff gives (320,), model has (8,))" in message
    assert "different base model" in message and "SDXL" in message
    with pytest.raises(WeightFileError):
        patches_from_state_dict(sd15_like, 1.0, target_shapes=model.state_dict())
    # Target given as {name: shape} works the same way.
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_patch_targets(entries, shapes)
    wrong_lora = dict(entries)
    wrong_lora[f"{PREFIX}{Q}.weight::lora::1"] = torch.zeros(3, 32)
    with pytest.raises(WeightFileError, match=r"lora gives \(16, 32\), model has \(16, 16\)"):
        check_patch_targets(wrong_lora, shapes)


def test_malformed_and_wrong_files(tmp_path):
    decoder_like = tmp_path / "vae_transparent_decoder.safetensors"
    safetensors.torch.save_file(
        {"down_blocks.0.resnets.0.conv1.weight": torch.zeros(1), "mid_block.resnets.0.norm1.bias": torch.zeros(1)},
        str(decoder_like),
    )
    with pytest.raises(WeightFileError, match="not a Layer Diffusion patch file"):
        read_patch_file(decoder_like)
    missing_down = {f"{PREFIX}{Q}.weight::lora::0": torch.zeros(16, 3)}
    with pytest.raises(WeightFileError, match="needs index 0 \\(up\\) and 1 \\(down\\)"):
        patches_from_state_dict(missing_down)
    unknown = {f"{PREFIX}{Q}.weight::loha::0": torch.zeros(16, 3)}
    with pytest.raises(WeightFileError, match="unknown patch type 'loha'"):
        patches_from_state_dict(unknown)
    truncated = tmp_path / "layer_xl_transparent_conv.safetensors"
    safetensors.torch.save_file(patch_entries(), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(WeightFileError, match="truncated"):
        read_patch_file(truncated)
    with pytest.raises(ValueError, match="strength"):
        patches_from_state_dict(patch_entries(), float("nan"))
