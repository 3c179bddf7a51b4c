"""Test-time augmentation, padding, batching, strategies and hooks of the transparent decoder."""

import pytest
import torch
import torch.nn.functional as F

from comfyui_ld_portrait.layerdiffusion.tta import (
    PASS_ORIENTATIONS,
    UPSTREAM_ORIENTATIONS,
    DecodeInterrupted,
    choose_strategy,
    decode_transparent,
    merge_passes,
    orient,
    unorient,
)
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder
from helpers.decoder_reference import random_network_state, upstream_augmented


@pytest.fixture(scope="module")
def network():
    state = random_network_state(1)
    return load_transparent_decoder(state)


def inputs(batch, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(1, height // 16), max(1, width // 16), generator=generator)
    image = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    latent = torch.randn(batch, 4, height // 8, width // 8, generator=generator)
    return image, latent


def test_orientations_round_trip_and_upstream_order():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    assert UPSTREAM_ORIENTATIONS == tuple((f, k) for f in (False, True) for k in range(4))
    seen = set()
    for o in UPSTREAM_ORIENTATIONS:
        assert torch.equal(unorient(orient(x, o), o), x)
        seen.add(tuple(orient(x, o).flatten().tolist()))
    assert len(seen) == 8  # eight distinct orientations
    for passes, orientations in PASS_ORIENTATIONS.items():
        assert len(orientations) == passes and set(orientations) <= set(UPSTREAM_ORIENTATIONS)


def test_merge_passes_rules():
    stack = torch.tensor([5.0, 1.0, 7.0, 3.0, 2.0, 8.0, 4.0, 6.0]).view(8, 1)
    assert merge_passes(stack).item() == 4.0  # lower median, as torch.median / upstream
    assert merge_passes(stack[:4]).item() == 4.0  # mean of middle two of 5, 1, 7, 3
    assert merge_passes(stack[:2]).item() == 3.0
    assert merge_passes(stack[:1]).item() == 5.0


def test_eight_passes_equal_upstream_procedure(network):
    image, latent = inputs(1, 64, 128)
    ours = decode_transparent(network, image, latent, passes=8, strategy="sequential")
    reference = upstream_augmented(network, image, latent)
    assert ours.shape == (1, 4, 64, 128) and ours.dtype == torch.float32
    assert (ours - reference).abs().max().item() <= 1e-6
    assert 0.0 <= ours.min() and ours.max() <= 1.0
    assert ours[:, 0].std() > 1e-3  # the test network gives a non-trivial alpha


def test_batched_equals_sequential_non_square(network):
    # 64x128: quarter turns transpose the shape, so the 8 orientations form two groups of 4,
    # and a sub-batch of 3 splits both groups unevenly.
    image, latent = inputs(1, 64, 128, seed=3)
    sequential = decode_transparent(network, image, latent, strategy="sequential")
    batched = decode_transparent(network, image, latent, strategy="batched", sub_batch_size=3)
    assert (batched - sequential).abs().max().item() <= 1e-5


def test_batched_several_images_and_sub_batch_one(network):
    image, latent = inputs(2, 64, 64, seed=9)
    sequential = decode_transparent(network, image, latent, passes=4, strategy="sequential")
    for sub_batch in (8, 1):
        batched = decode_transparent(
            network, image, latent, passes=4, strategy="batched", sub_batch_size=sub_batch
        )
        assert (batched - sequential).abs().max().item() <= 1e-5, sub_batch


def test_fewer_passes_follow_their_definition(network):
    image, latent = inputs(1, 64, 64, seed=4)
    with torch.inference_mode():
        single = {o: unorient(network(orient(image, o), orient(latent, o)).clamp(0, 1), o)
                  for o in UPSTREAM_ORIENTATIONS}
    one = decode_transparent(network, image, latent, passes=1)
    assert (one - single[(False, 0)]).abs().max() <= 1e-6
    two = decode_transparent(network, image, latent, passes=2, strategy="batched")
    assert (two - (single[(False, 0)] + single[(False, 2)]) / 2).abs().max() <= 1e-5
    four = decode_transparent(network, image, latent, passes=4)
    stack = torch.sort(torch.stack([single[(False, k)] for k in range(4)]), dim=0).values
    assert (four - stack[1:3].mean(0)).abs().max() <= 1e-5


@pytest.mark.parametrize("height,width", [(72, 40), (8, 8), (136, 64)])
def test_any_size_is_padded_and_cropped(network, height, width):
    image, latent = inputs(1, height, width, seed=5)
    out = decode_transparent(network, image, latent, passes=2)
    assert out.shape == (1, 4, height, width)
    assert torch.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0


def test_padding_is_reflect_split_in_latent_units(network):
    # 72x40 pads to 128x64: 56 rows (24 above, 32 below), 24 columns (8 left, 16 right).
    image, latent = inputs(1, 72, 40, seed=6)
    out = decode_transparent(network, image, latent, passes=1)
    padded_image = F.pad(image, (8, 16, 24, 32), mode="reflect")
    padded_latent = F.pad(latent, (1, 2, 3, 4), mode="reflect")
    full = decode_transparent(network, padded_image, padded_latent, passes=1)
    assert (out - full[:, :, 24:96, 8:48]).abs().max() <= 1e-6
    replicate = decode_transparent(network, image, latent, passes=1, pad_mode="replicate")
    assert replicate.shape == out.shape and not torch.equal(replicate, out)


def test_batch_of_several_equals_one_by_one(network):
    image, latent = inputs(3, 64, 64, seed=7)
    together = decode_transparent(network, image, latent, passes=2, strategy="batched", sub_batch_size=4)
    for i in range(3):
        alone = decode_transparent(network, image[i : i + 1], latent[i : i + 1], passes=2)
        assert (together[i : i + 1] - alone).abs().max() <= 1e-5


def test_size_batch_and_layout_mismatches_are_clear_errors(network):
    image, latent = inputs(1, 64, 64)
    with pytest.raises(ValueError, match="exactly 8x the latent"):
        decode_transparent(network, image, torch.zeros(1, 4, 8, 9))
    with pytest.raises(ValueError, match="exactly 8x the latent"):
        decode_transparent(network, image[:, :, :60], latent)
    with pytest.raises(ValueError, match=r"batch \(2\) and latent batch \(1\)"):
        decode_transparent(network, image.repeat(2, 1, 1, 1), latent)
    with pytest.raises(ValueError, match="movedim"):
        decode_transparent(network, image.permute(0, 2, 3, 1), latent)
    with pytest.raises(ValueError, match=r"\[B, 4, H/8, W/8\]"):
        decode_transparent(network, image, latent[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        decode_transparent(network, image * float("nan"), latent)
    with pytest.raises(ValueError, match="passes"):
        decode_transparent(network, image, latent, passes=3)
    with pytest.raises(ValueError, match="strategy"):
        decode_transparent(network, image, latent, strategy="fast")
    with pytest.raises(ValueError, match="sub_batch_size"):
        decode_transparent(network, image, latent, sub_batch_size=0)


def test_progress_and_interrupt_hooks(network):
    image, latent = inputs(2, 64, 64, seed=8)
    calls = []
    decode_transparent(network, image, latent, passes=4, strategy="batched", sub_batch_size=3,
                       on_pass=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (8, 8) and all(t == 8 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) >= 3

    checks = []

    def stop_after_first():
        checks.append(1)
        return len(checks) > 1

    with pytest.raises(DecodeInterrupted):
        decode_transparent(network, image, latent, passes=8, interrupt_check=stop_after_first)
    assert len(checks) == 2  # stopped before the second network call

    class HostInterrupt(Exception):
        pass

    def host_check():
        raise HostInterrupt()

    with pytest.raises(HostInterrupt):
        decode_transparent(network, image, latent, interrupt_check=host_check)


def test_strategy_per_device():
    assert choose_strategy(torch.device("cpu")) == "sequential"
    assert choose_strategy(torch.device("cuda")) == "batched"


def test_channels_last_network_gives_the_same_result(network):
    # The GPU path stores weights channels-last; its arithmetic is checked here on CPU.
    state = {k: v.clone() for k, v in network.state_dict().items()}
    channels_last = load_transparent_decoder(state, channels_last=True)
    assert channels_last.conv_out.weight.is_contiguous(memory_format=torch.channels_last)
    image, latent = inputs(1, 64, 128, seed=10)
    expected = decode_transparent(network, image, latent, passes=2)
    actual = decode_transparent(channels_last, image, latent, passes=2, strategy="batched")
    assert (actual - expected).abs().max().item() <= 1e-5
