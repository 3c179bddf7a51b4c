"""The Layer Diffusion transparent encoder (RGBA -> latent offset) for img2img, in plain torch.

Upstream (``vae_transparent_encoder.safetensors``) is a small plain CNN, 9 convolutions with
SiLU between them, three of them stride 2, the last zero-initialised: input is alpha and the
*padded* foreground colour (``base.padding.pad_foreground``, upstream's "pad_rgb"), 4
channels in 0..1 at image resolution; output is a 4-channel offset at latent resolution (1/8).

The offset does not replace the ordinary VAE encoding; it steers its sampling. Upstream (Forge)
encodes the RGBA image flattened on grey with the ordinary VAE, then uses
``latent = posterior.mean + posterior.std * offset`` instead of a random sample
(``regulate_latent``). Forge uses the offset of the ``layerdiffusion-v1`` file as is; the
diffusers CLI multiplies the offset of its own converted file by 300 (``offset_scale``).

Flux (RedAIGC/Flux-version-LayerDiffuse ``LatentTransparencyOffsetEncoder(latent_c=16)``): the
same 9 convolutions with a 16-channel last one; its input is the padded RGB *first*, then
alpha, and its offset is multiplied by 300. The network infers the channel count from the
weights (``blocks.16.weight``) and, with it, the input order and default scale
(``FAMILY_CONVENTIONS``).
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .decoder import checked_latent_channels
from .weights import (
    _ENCODER_NAMES,
    ENCODER_FILE_NAME,
    _adopt_weights,
    _check_layout,
    _read_weights,
)

__all__ = [
    "TransparentEncoderNet",
    "FAMILY_CONVENTIONS",
    "encoder_state_dict_shapes",
    "encoder_latent_channels_of",
    "load_transparent_encoder",
    "latent_offset",
    "regulate_latent",
]

# (in, out, stride) of the 9 convolutions, all 3x3 with padding 1; SiLU between them.
_CONVS = (
    (4, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2),
    (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 4, 1),
)


#: latent channels -> (input order, default offset scale), facts of the published files:
#: layerdiffusion-v1 (4): alpha first, offset as is (Forge); Flux (16): RGB first, x 300.
FAMILY_CONVENTIONS = {4: ("alpha_rgb", 1.0), 16: ("rgb_alpha", 300.0)}
_LAST_CONV_KEY = f"blocks.{2 * (len(_CONVS) - 1)}.weight"


class TransparentEncoderNet(nn.Module):
    """Weight-compatible with ``vae_transparent_encoder.safetensors`` (keys ``blocks.<i>.*``).

    ``forward(x)``: ``x`` is ``[B, 4, H, W]`` in the order ``input_order`` says (SD: alpha then
    padded RGB; Flux: padded RGB then alpha), all 0..1, H and W multiples of 8; returns the
    ``[B, latent_channels, H/8, W/8]`` latent offset.
    """

    def __init__(self, latent_channels: int = 4):
        super().__init__()
        self.latent_channels = checked_latent_channels(latent_channels)
        self.input_order, self.default_offset_scale = FAMILY_CONVENTIONS[self.latent_channels]
        layers = []
        for i, (cin, cout, stride) in enumerate(_CONVS):
            if i == len(_CONVS) - 1:
                cout = latent_channels
            layers.append(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))
            if i < len(_CONVS) - 1:
                layers.append(nn.SiLU())
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def encoder_state_dict_shapes(latent_channels: int = 4) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of the 18 tensors of the published encoder file (4 or 16 channels)."""
    with torch.device("meta"):
        network = TransparentEncoderNet(latent_channels)
    return {name: tuple(t.shape) for name, t in network.state_dict().items()}


def encoder_latent_channels_of(state_dict) -> int:
    """Output channels of an encoder state dict's last convolution (4 when it is missing)."""
    tensor = state_dict.get(_LAST_CONV_KEY) if hasattr(state_dict, "get") else None
    shape = getattr(tensor, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) == 4 else 4


def load_transparent_encoder(
    source: Union[str, os.PathLike, Mapping[str, torch.Tensor]],
    *,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> TransparentEncoderNet:
    """Build the encoder from ``vae_transparent_encoder.safetensors`` or a state dict, strictly.

    Raises ``FileNotFoundError`` / ``weights.WeightFileError`` like the decoder loader.
    """
    device, state_dict, label = _read_weights(source, ENCODER_FILE_NAME, device, dtype)
    channels = _check_layout(state_dict, encoder_latent_channels_of(state_dict), encoder_state_dict_shapes,
                             what="transparent encoder", expected_name=_ENCODER_NAMES, source=label)
    network = _adopt_weights(lambda: TransparentEncoderNet(channels), state_dict, source,
                             what="transparent encoder", label=label, device=device, dtype=dtype)
    return network.to(device=device, dtype=dtype).eval().requires_grad_(False)


def latent_offset(
    network: TransparentEncoderNet,
    alpha: torch.Tensor,
    padded_rgb: torch.Tensor,
    *,
    offset_scale: Optional[float] = None,
) -> torch.Tensor:
    """Latent offset for RGBA images.

    Parameters
    ----------
    network : TransparentEncoderNet
    alpha : torch.Tensor
        ``[B, 1, H, W]`` or ``[B, H, W]`` in 0..1 (1 = opaque); H, W multiples of 8.
    padded_rgb : torch.Tensor
        ``[B, 3, H, W]`` foreground colour in 0..1 with transparent areas padded
        (``base.padding.pad_foreground``).
    offset_scale : float, optional
        Multiplies the offset. Default: the network's family convention, 1 for the
        ``layerdiffusion-v1`` file (as Forge), 300 for the Flux file (as its reference); the
        diffusers CLI's converted SD file also wants 300.

    Returns
    -------
    torch.Tensor
        ``[B, C, H/8, W/8]`` float32 offset on ``alpha``'s device, ``C`` the network's latent
        channels.
    """
    if alpha.ndim == 3:
        alpha = alpha[:, None]
    if alpha.ndim != 4 or alpha.shape[1] != 1 or padded_rgb.ndim != 4 or padded_rgb.shape[1] != 3:
        raise ValueError(
            f"alpha must be [B, 1, H, W] and padded_rgb [B, 3, H, W]; got {tuple(alpha.shape)} and "
            f"{tuple(padded_rgb.shape)}."
        )
    if alpha.shape[0] != padded_rgb.shape[0] or alpha.shape[2:] != padded_rgb.shape[2:]:
        raise ValueError(
            f"alpha {tuple(alpha.shape)} and padded_rgb {tuple(padded_rgb.shape)} differ in "
            "batch or size."
        )
    height, width = alpha.shape[2:]
    if height % 8 or width % 8 or height == 0 or width == 0:
        raise ValueError(
            f"image size {height}x{width} must be a positive multiple of 8 (latent = 1/8)."
        )
    if offset_scale is None:
        offset_scale = getattr(network, "default_offset_scale", 1.0)
    weight = network.blocks[0].weight
    parts = [padded_rgb, alpha] if getattr(network, "input_order", "") == "rgb_alpha" else [alpha, padded_rgb]
    feed = torch.cat(parts, dim=1).to(device=weight.device, dtype=weight.dtype)
    with torch.inference_mode():
        offset = network(feed.clamp(0.0, 1.0))
    return (offset.float() * offset_scale).to(alpha.device)


def regulate_latent(mean: torch.Tensor, std: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``mean + std * offset``: the VAE posterior sampled along the transparency offset."""
    if mean.shape != std.shape or mean.shape != offset.shape:
        raise ValueError(
            f"mean {tuple(mean.shape)}, std {tuple(std.shape)} and offset {tuple(offset.shape)} "
            "must have the same shape."
        )
    return mean + std * offset.to(mean)
