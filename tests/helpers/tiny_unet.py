"""A tiny module with SDXL-style UNet weight names and a Layer Diffusion patch file for it.

Used by the patch-folding tests (tests/layerdiffusion), the patch node tests (tests/nodes) and
the host patch test (tests/host), whose scaffold model inside ComfyUI has the same layout
(that copy lives in a source string the host runs and cannot import this module).

The patch entries follow the published ``<model key>::<type>::<index>`` layout: ``lora`` index
0 is up, 1 is down (2, when present, is alpha); ``diff`` index 0 is the full difference.
"""
from __future__ import annotations

import torch
from torch import nn

PREFIX = "diffusion_model."
Q = "input_blocks.4.1.transformer_blocks.0.attn1.to_q"
K2 = "input_blocks.4.1.transformer_blocks.0.attn2.to_k"  # cross-attention: context dim 24
PROJ_IN = "middle_block.1.proj_in"  # a 1x1 conv patched by 2-D factors (optional)
CONV = "input_blocks.0.0"
NORM = "output_blocks.2.1.norm"
RANK = 3


class SDXL:
    """Stands in for the host's model config; the patch node names its class in messages."""


def build(parent: nn.Module, dotted: str, module: nn.Module) -> None:
    """Register ``module`` under a dotted path, creating ModuleDicts on the way."""
    *path, last = dotted.split(".")
    for part in path:
        if part not in parent._modules:
            parent.add_module(part, nn.ModuleDict())
        parent = parent._modules[part]
    parent.add_module(last, module)


def _layout(proj_in: bool) -> dict:
    """Leaf module name -> factory, in creation order (the order fixes the seeded weights)."""
    layout = {Q: lambda: nn.Linear(16, 16, bias=False), K2: lambda: nn.Linear(24, 16, bias=False)}
    if proj_in:
        layout[PROJ_IN] = lambda: nn.Conv2d(16, 16, 1)
    layout[CONV] = lambda: nn.Conv2d(4, 8, 3, padding=1)
    layout[NORM] = lambda: nn.GroupNorm(4, 8)
    return layout


def tiny_sdxl_like_model(*, proj_in: bool = False, seed: int = 0) -> nn.Module:
    """What ``ModelPatcher.model`` looks like to the patch code: weights under ``diffusion_model.``
    (seeded with ``torch.manual_seed(seed)``), and a ``model_config`` of class ``SDXL``."""
    torch.manual_seed(seed)
    model = nn.Module()
    for dotted, factory in _layout(proj_in).items():
        build(model, PREFIX + dotted, factory())
    model.model_config = SDXL()
    return model


def tiny_patch_entries(*, seed: int = 1, proj_in: bool = False, k2_alpha: float | None = None) -> dict:
    """A patch file's entries for :func:`tiny_sdxl_like_model` (same ``proj_in``): rank-3
    ``lora`` factors for the attention weights (and ``proj_in``) and the conv weight, ``diff``
    entries for the conv bias and the norm weight, drawn from ``torch.Generator(seed)``.
    ``k2_alpha`` adds a ``lora`` alpha entry to the cross-attention key (scale alpha / rank)."""
    g = torch.Generator().manual_seed(seed)
    r = RANK
    entries = {
        f"{PREFIX}{Q}.weight::lora::0": torch.randn(16, r, generator=g),
        f"{PREFIX}{Q}.weight::lora::1": torch.randn(r, 16, generator=g),
        f"{PREFIX}{K2}.weight::lora::0": torch.randn(16, r, generator=g),
        f"{PREFIX}{K2}.weight::lora::1": torch.randn(r, 24, generator=g),
    }
    if k2_alpha is not None:
        entries[f"{PREFIX}{K2}.weight::lora::2"] = torch.tensor(k2_alpha)
    if proj_in:
        entries[f"{PREFIX}{PROJ_IN}.weight::lora::0"] = torch.randn(16, r, generator=g)
        entries[f"{PREFIX}{PROJ_IN}.weight::lora::1"] = torch.randn(r, 16, generator=g)
    entries.update({
        f"{PREFIX}{CONV}.weight::lora::0": torch.randn(8, r, 1, 1, generator=g),
        f"{PREFIX}{CONV}.weight::lora::1": torch.randn(r, 4, 3, 3, generator=g),
        f"{PREFIX}{CONV}.bias::diff::0": torch.randn(8, generator=g),
        f"{PREFIX}{NORM}.weight::diff::0": torch.randn(8, generator=g),
    })
    return entries
