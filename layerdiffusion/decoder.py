"""The Layer Diffusion transparent decoder network ("UNet1024") in plain torch.

The network turns what the ordinary SD/SDXL VAE decoded (RGB in 0..1) plus the SD latent it
came from into four channels: alpha, then the foreground colour. Its parameter names and shapes
are exactly those of the published ``vae_transparent_decoder.safetensors`` (538 tensors,
104,104,804 parameters, diffusers UNet block key names), so that file loads with
``load_state_dict(strict=True)`` and nothing is renamed.

Architecture (the facts of the published release):

- 7 levels with block channels ``(32, 32, 64, 128, 256, 512, 512)``; every level but the last
  halves the resolution with a stride-2 3x3 convolution, so height and width must be multiples
  of ``SIZE_MULTIPLE`` (64). ``tta.decode_transparent`` pads other sizes.
- Down blocks: 2 residual blocks each, self-attention after each residual block in the three
  deepest levels. Mid block: residual, attention, residual. Up blocks: 3 residual blocks each
  (input concatenated with a skip tensor), attention in the first three, nearest x2 upsampling
  plus a 3x3 convolution in all but the last.
- GroupNorm with 4 groups and eps 1e-5, SiLU, no time embedding, attention heads of 8 channels.
- The latent (4 channels for SD1.5/SDXL, 16 for Flux; 1/8 resolution) goes through a 1x1
  convolution to 64 channels and is added to the features before down block 3 (which works at
  1/8 resolution). The number of latent channels is the only difference between the SD and
  the Flux decoder (upstream's ``latent_c``); ``latent_channels_of`` reads it from weights.

Inputs and outputs are as upstream: the image is the VAE decode in 0..1 (not -1..1), the latent
is the *unscaled* VAE latent (what ComfyUI's ``LATENT["samples"]`` holds, i.e. diffusers'
latent divided by ``vae.config.scaling_factor``, plus ``shift_factor`` for Flux: ComfyUI's
sampler returns ``latent_format.process_out(x) = x / scale_factor + shift_factor``, the same
expression upstream's Flux code applies before decoding), and the raw output is unbounded; upstream
clips every pass to 0..1, which ``tta.decode_transparent`` does.

The module here holds no device or dtype policy and no test-time augmentation; see ``tta``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BLOCK_CHANNELS",
    "SIZE_MULTIPLE",
    "LATENT_FACTOR",
    "EXPECTED_TENSOR_COUNT",
    "EXPECTED_PARAMETER_COUNT",
    "SUPPORTED_LATENT_CHANNELS",
    "TransparentDecoderUNet",
    "decoder_state_dict_shapes",
    "latent_channels_of",
    "random_decoder_state_dict",
]

BLOCK_CHANNELS: Tuple[int, ...] = (32, 32, 64, 128, 256, 512, 512)
# Levels (0-based) whose blocks carry self-attention, counted from the full-resolution end.
_ATTENTION_LEVELS = (4, 5, 6)
_RESNETS_PER_DOWN_BLOCK = 2
_RESNETS_PER_UP_BLOCK = 3
_NORM_GROUPS = 4
_NORM_EPS = 1e-5
_HEAD_DIM = 8
# The latent joins the image features before this down block (its input is at 1/8 resolution).
_LATENT_LEVEL = 3

SIZE_MULTIPLE = 2 ** (len(BLOCK_CHANNELS) - 1)  # 64: six stride-2 downsamplings
LATENT_FACTOR = 8  # SD VAE: one latent pixel per 8x8 image pixels
EXPECTED_TENSOR_COUNT = 538
EXPECTED_PARAMETER_COUNT = 104_104_804  # with 4 latent channels (SD1.5 / SDXL)
SUPPORTED_LATENT_CHANNELS = (4, 16)  # SD1.5 / SDXL, Flux (same as model_files)


def checked_latent_channels(latent_channels) -> int:
    """``latent_channels`` as an int, or ``ValueError`` unless it is in ``SUPPORTED_LATENT_CHANNELS``."""
    if latent_channels not in SUPPORTED_LATENT_CHANNELS:
        raise ValueError(f"latent_channels must be one of {SUPPORTED_LATENT_CHANNELS}; got "
                         f"{latent_channels!r}.")
    return int(latent_channels)


class _ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, plus an identity or 1x1-conv shortcut (diffusers layout)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_NORM_GROUPS, in_channels, eps=_NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_NORM_GROUPS, out_channels, eps=_NORM_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        # In-place SiLU on a fresh tensor saves one full-size activation per block.
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return h.add_(shortcut)


class _SelfAttention(nn.Module):
    """Single-layer spatial self-attention with GroupNorm in front and a residual connection.

    Parameter names follow diffusers' ``Attention`` (``group_norm``, ``to_q``, ``to_k``,
    ``to_v``, ``to_out.0``), which is what the published file uses.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.heads = channels // _HEAD_DIM
        self.group_norm = nn.GroupNorm(_NORM_GROUPS, channels, eps=_NORM_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.group_norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]

        def split_heads(t: torch.Tensor) -> torch.Tensor:  # [B, HW, C] -> [B, heads, HW, 8]
            return t.view(batch, -1, self.heads, _HEAD_DIM).transpose(1, 2)

        q = split_heads(self.to_q(tokens))
        k = split_heads(self.to_k(tokens))
        v = split_heads(self.to_v(tokens))
        attended = F.scaled_dot_product_attention(q, k, v)  # default scale 1/sqrt(8)
        attended = attended.transpose(1, 2).reshape(batch, -1, channels)
        out = self.to_out[0](attended)
        out = out.transpose(1, 2).reshape(batch, channels, height, width)
        return out.add_(x)


class _Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, attention: bool, downsample: bool):
        super().__init__()
        # Registration order (attentions first) and names follow diffusers, so that
        # state_dict() lists keys in the same order as a diffusers-built UNet1024. An empty
        # ModuleList registers no parameters.
        self.attentions = nn.ModuleList(
            _SelfAttention(out_channels) for _ in range(_RESNETS_PER_DOWN_BLOCK if attention else 0)
        )
        self.resnets = nn.ModuleList(
            _ResnetBlock(in_channels if i == 0 else out_channels, out_channels)
            for i in range(_RESNETS_PER_DOWN_BLOCK)
        )
        self.downsamplers = nn.ModuleList([_Downsample(out_channels)] if downsample else [])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x)
            if len(self.attentions):
                x = self.attentions[i](x)
            skips.append(x)
        for downsampler in self.downsamplers:
            x = downsampler(x)
            skips.append(x)
        return x, skips


class _UpBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        prev_channels: int,
        out_channels: int,
        attention: bool,
        upsample: bool,
    ):
        super().__init__()
        resnets = []
        for i in range(_RESNETS_PER_UP_BLOCK):
            skip_channels = in_channels if i == _RESNETS_PER_UP_BLOCK - 1 else out_channels
            main_channels = prev_channels if i == 0 else out_channels
            resnets.append(_ResnetBlock(main_channels + skip_channels, out_channels))
        self.attentions = nn.ModuleList(
            _SelfAttention(out_channels) for _ in range(_RESNETS_PER_UP_BLOCK if attention else 0)
        )
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = nn.ModuleList([_Upsample(out_channels)] if upsample else [])

    def forward(self, x: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1))
            if len(self.attentions):
                x = self.attentions[i](x)
        for upsampler in self.upsamplers:
            x = upsampler(x)
        return x


class _MidBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.attentions = nn.ModuleList([_SelfAttention(channels)])
        self.resnets = nn.ModuleList([_ResnetBlock(channels, channels) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


class TransparentDecoderUNet(nn.Module):
    """The transparent decoder network, weight-compatible with ``vae_transparent_decoder``.

    ``forward(image, latent)`` is one pass without test-time augmentation or clipping.

    Parameters of ``forward``
    -------------------------
    image : torch.Tensor
        ``[B, 3, H, W]`` RGB decoded by the ordinary VAE, in 0..1; ``H`` and ``W`` multiples
        of 64 (``SIZE_MULTIPLE``).
    latent : torch.Tensor
        ``[B, C, H/8, W/8]`` unscaled VAE latent of the same images, ``C`` =
        ``latent_channels`` (4 for SD1.5 / SDXL, 16 for Flux).

    Returns
    -------
    torch.Tensor
        ``[B, 4, H, W]``: channel 0 alpha, channels 1..3 foreground RGB, not yet clipped
        (upstream clips to 0..1 after every pass).
    """

    def __init__(self, latent_channels: int = 4):
        super().__init__()
        self.latent_channels = checked_latent_channels(latent_channels)
        ch = BLOCK_CHANNELS
        levels = len(ch)
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        # Zero-initialised upstream so that training started from an image-only network.
        self.latent_conv_in = nn.Conv2d(latent_channels, ch[_LATENT_LEVEL - 1], 1)
        nn.init.zeros_(self.latent_conv_in.weight)
        nn.init.zeros_(self.latent_conv_in.bias)

        self.down_blocks = nn.ModuleList()
        previous = ch[0]
        for level in range(levels):
            self.down_blocks.append(
                _DownBlock(
                    previous,
                    ch[level],
                    attention=level in _ATTENTION_LEVELS,
                    downsample=level < levels - 1,
                )
            )
            previous = ch[level]

        self.mid_block = _MidBlock(ch[-1])

        reversed_ch = ch[::-1]
        self.up_blocks = nn.ModuleList()
        previous = reversed_ch[0]
        for i in range(levels):
            out_channels = reversed_ch[i]
            self.up_blocks.append(
                _UpBlock(
                    in_channels=reversed_ch[min(i + 1, levels - 1)],
                    prev_channels=previous,
                    out_channels=out_channels,
                    attention=(levels - 1 - i) in _ATTENTION_LEVELS,
                    upsample=i < levels - 1,
                )
            )
            previous = out_channels

        self.conv_norm_out = nn.GroupNorm(_NORM_GROUPS, ch[0], eps=_NORM_EPS)
        self.conv_out = nn.Conv2d(ch[0], 4, 3, padding=1)

    def forward(self, image: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(image)
        skips = [x]
        for level, block in enumerate(self.down_blocks):
            if level == _LATENT_LEVEL:
                x = x + self.latent_conv_in(latent)
            x, block_skips = block(x)
            skips.extend(block_skips)
        x = self.mid_block(x)
        for block in self.up_blocks:
            x = block(x, skips)
        return self.conv_out(F.silu(self.conv_norm_out(x), inplace=True))


def decoder_state_dict_shapes(latent_channels: int = 4) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of every tensor the published decoder file must contain.

    Built on the ``meta`` device, so it costs no memory and no initialisation time.

    Parameters
    ----------
    latent_channels : {4, 16}
        4 for the SD1.5 / SDXL decoders, 16 for the Flux one.

    Returns
    -------
    dict
        ``{name: shape}`` for all 538 tensors, in module order.
    """
    with torch.device("meta"):
        network = TransparentDecoderUNet(latent_channels)
    return {name: tuple(t.shape) for name, t in network.state_dict().items()}


def latent_channels_of(state_dict, key: str = "latent_conv_in.weight") -> int:
    """Latent channels a decoder state dict was made for (dimension 1 of ``key``).

    Returns 4 when the key is missing, so that the layout check reports what is wrong with the
    file against the usual layout. A count outside ``SUPPORTED_LATENT_CHANNELS`` is returned as
    is: the layout check then names the mismatching shape.
    """
    tensor = state_dict.get(key) if hasattr(state_dict, "get") else None
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) != 4:
        return 4
    return int(shape[1])


def random_decoder_state_dict(seed: int = 0, dtype: torch.dtype = torch.float32,
                              latent_channels: int = 4) -> Dict[str, torch.Tensor]:
    """Random weights in the published decoder layout, at initialisation-like scales.

    For tests, benchmarks and checking an installation without the real file: the network
    runs and gives structured (not constant) output, but it is not a trained decoder.

    Parameters
    ----------
    seed : int
        Seed of a private generator; the same seed gives the same tensors everywhere.
    dtype : torch.dtype
        Dtype of the returned tensors (the published file is float16).
    latent_channels : {4, 16}
        SD layout (4) or Flux layout (16).

    Returns
    -------
    dict
        ``{name: tensor}`` for all 538 tensors, on the CPU.
    """
    generator = torch.Generator().manual_seed(int(seed))
    state = {}
    for name, shape in decoder_state_dict_shapes(latent_channels).items():
        tensor = torch.empty(shape)
        if "norm" in name and name.endswith("weight"):
            tensor.normal_(1.0, 0.1, generator=generator)
        elif name.endswith("bias"):
            tensor.normal_(0.0, 0.02, generator=generator)
        else:
            bound = 1.0 / math.sqrt(math.prod(shape[1:]))
            tensor.uniform_(-bound, bound, generator=generator)
        state[name] = tensor.to(dtype)
    return state
