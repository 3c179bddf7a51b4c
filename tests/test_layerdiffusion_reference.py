"""The native decoder is numerically the same network as upstream's diffusers-built UNet1024.

The reference is assembled here from diffusers' public UNet blocks with upstream's
configuration (block channels, 2/3 resnets, attention levels, GroupNorm 4, eps 1e-5, head dim
8, latent injected before down block 3). diffusers is a test-only dependency.
"""
import math

import pytest
import torch
from torch import nn

# diffusers is in the `test` extra, so a missing install fails loudly instead of skipping;
# the library itself never imports it.
try:  # diffusers >= 0.26 moved the UNet blocks
    from diffusers.models.unets import unet_2d_blocks as diffusers_blocks
except ImportError:  # pragma: no cover - older diffusers
    from diffusers.models import unet_2d_blocks as diffusers_blocks

from comfyui_ld_portrait.layerdiffusion.decoder import BLOCK_CHANNELS, decoder_state_dict_shapes  # noqa: E402
from comfyui_ld_portrait.layerdiffusion.tta import decode_transparent  # noqa: E402
from comfyui_ld_portrait.layerdiffusion.weights import load_transparent_decoder  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    # Shared 2-core test machine: one thread avoids OpenMP oversubscription stalls.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class DiffusersReference(nn.Module):
    """UNet1024 from diffusers blocks, as upstream configures it."""

    def __init__(self):
        super().__init__()
        ch = BLOCK_CHANNELS
        common = dict(
            temb_channels=None, resnet_eps=1e-5, resnet_act_fn="silu", resnet_groups=4,
            attention_head_dim=8, resnet_time_scale_shift="default", dropout=0.0,
        )
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.latent_conv_in = nn.Conv2d(4, ch[2], 1)
        self.down_blocks = nn.ModuleList()
        previous = ch[0]
        for i in range(7):
            self.down_blocks.append(diffusers_blocks.get_down_block(
                "AttnDownBlock2D" if i >= 4 else "DownBlock2D", num_layers=2,
                in_channels=previous, out_channels=ch[i], add_downsample=i < 6,
                downsample_padding=1, downsample_type="conv", **common,
            ))
            previous = ch[i]
        self.mid_block = diffusers_blocks.UNetMidBlock2D(
            in_channels=ch[-1], temb_channels=None, dropout=0.0, resnet_eps=1e-5,
            resnet_act_fn="silu", output_scale_factor=1, resnet_time_scale_shift="default",
            attention_head_dim=8, resnet_groups=4, attn_groups=None, add_attention=True,
        )
        reversed_ch = ch[::-1]
        self.up_blocks = nn.ModuleList()
        previous = reversed_ch[0]
        for i in range(7):
            self.up_blocks.append(diffusers_blocks.get_up_block(
                "AttnUpBlock2D" if i < 3 else "UpBlock2D", num_layers=3,
                in_channels=reversed_ch[min(i + 1, 6)], out_channels=reversed_ch[i],
                prev_output_channel=previous, add_upsample=i < 6, upsample_type="conv", **common,
            ))
            previous = reversed_ch[i]
        self.conv_norm_out = nn.GroupNorm(4, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], 4, 3, padding=1)

    def forward(self, x, latent):
        sample_latent = self.latent_conv_in(latent)
        sample = self.conv_in(x)
        skips = (sample,)
        for i, block in enumerate(self.down_blocks):
            if i == 3:
                sample = sample + sample_latent
            sample, res = block(hidden_states=sample, temb=None)
            skips += res
        sample = self.mid_block(sample, None)
        for block in self.up_blocks:
            res, skips = skips[-len(block.resnets):], skips[: -len(block.resnets)]
            sample = block(sample, res, None)
        return self.conv_out(torch.nn.functional.silu(self.conv_norm_out(sample)))


@pytest.fixture(scope="module")
def both_networks():
    generator = torch.Generator().manual_seed(2)
    state = {}
    for name, shape in decoder_state_dict_shapes().items():
        tensor = torch.empty(shape)
        if "norm" in name and name.endswith("weight"):
            tensor.normal_(1.0, 0.1, generator=generator)
        elif name.endswith("bias"):
            tensor.normal_(0.0, 0.02, generator=generator)
        else:
            bound = 1.0 / math.sqrt(math.prod(shape[1:]))
            tensor.uniform_(-bound, bound, generator=generator)
        state[name] = tensor
    state["conv_out.bias"][0] = 0.5
    reference = DiffusersReference().eval()
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
    results = []
    with torch.inference_mode():
        for flip in (False, True):
            for turns in range(4):
                p, l = image, latent
                if flip:
                    p, l = torch.flip(p, dims=(3,)), torch.flip(l, dims=(3,))
                p, l = torch.rot90(p, turns, dims=(2, 3)), torch.rot90(l, turns, dims=(2, 3))
                y = torch.rot90(reference(p, l).clip(0, 1), -turns, dims=(2, 3))
                results.append(torch.flip(y, dims=(3,)) if flip else y)
    expected = torch.median(torch.stack(results), dim=0).values
    for strategy in ("sequential", "batched"):
        actual = decode_transparent(ours, image, latent, passes=8, strategy=strategy)
        assert (actual - expected).abs().max().item() <= 1e-5, strategy
