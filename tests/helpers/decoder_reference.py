"""The upstream decoder procedure and a diffusers-built reference network, for the decoder
tests and benchmarks/bench_decoder.py."""
from __future__ import annotations

import torch

from comfyui_ld_portrait.layerdiffusion.decoder import BLOCK_CHANNELS, random_decoder_state_dict


def random_network_state(seed: int, latent_channels: int = 4) -> dict:
    """Random decoder weights with the alpha bias raised to 0.5, so that clipping to 0..1 does
    not flatten most of the output (a flat output would make comparisons meaningless)."""
    state = random_decoder_state_dict(seed, latent_channels=latent_channels)
    state["conv_out.bias"][0] = 0.5
    return state


def upstream_augmented(network, pixel: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Re-statement of upstream's estimate_augmented: 8 orientations one by one, clip, median."""
    results = []
    with torch.inference_mode():
        for flip in (False, True):
            for turns in range(4):
                p, l = pixel, latent
                if flip:
                    p, l = torch.flip(p, dims=(3,)), torch.flip(l, dims=(3,))
                p, l = torch.rot90(p, k=turns, dims=(2, 3)), torch.rot90(l, k=turns, dims=(2, 3))
                y = torch.rot90(network(p, l).clip(0, 1), k=-turns, dims=(2, 3))
                results.append(torch.flip(y, dims=(3,)) if flip else y)
    return torch.median(torch.stack(results), dim=0).values


def build_diffusers_reference(latent_channels: int = 4) -> torch.nn.Module:
    """UNet1024 assembled from diffusers' public blocks with upstream's configuration (block
    channels, 2/3 resnets, attention levels, GroupNorm 4, eps 1e-5, head dim 8, latent added
    before down block 3). diffusers is a test-only dependency."""
    try:  # diffusers >= 0.26 moved the UNet blocks
        from diffusers.models.unets import unet_2d_blocks as blocks
    except ImportError:  # pragma: no cover - older diffusers
        from diffusers.models import unet_2d_blocks as blocks
    from torch import nn

    ch = BLOCK_CHANNELS
    common = dict(temb_channels=None, resnet_eps=1e-5, resnet_act_fn="silu", resnet_groups=4,
                  attention_head_dim=8, resnet_time_scale_shift="default", dropout=0.0)

    class DiffusersReference(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
            self.latent_conv_in = nn.Conv2d(latent_channels, ch[2], 1)  # upstream's latent_c
            self.down_blocks = nn.ModuleList(
                blocks.get_down_block("AttnDownBlock2D" if i >= 4 else "DownBlock2D", num_layers=2,
                                      in_channels=ch[max(i - 1, 0)], out_channels=ch[i],
                                      add_downsample=i < 6, downsample_padding=1,
                                      downsample_type="conv", **common)
                for i in range(7))
            self.mid_block = blocks.UNetMidBlock2D(
                in_channels=ch[-1], temb_channels=None, dropout=0.0, resnet_eps=1e-5,
                resnet_act_fn="silu", output_scale_factor=1, resnet_time_scale_shift="default",
                attention_head_dim=8, resnet_groups=4, attn_groups=None, add_attention=True)
            rc = ch[::-1]
            self.up_blocks = nn.ModuleList(
                blocks.get_up_block("AttnUpBlock2D" if i < 3 else "UpBlock2D", num_layers=3,
                                    in_channels=rc[min(i + 1, 6)], out_channels=rc[i],
                                    prev_output_channel=rc[max(i - 1, 0)], add_upsample=i < 6,
                                    upsample_type="conv", **common)
                for i in range(7))
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

    return DiffusersReference()


# --- images written by a ComfyUI host ----------------------------------------------------------
