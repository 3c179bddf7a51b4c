"""SD1.5 transparent attention (``layer_sd15_transparent_attn.safetensors``) in plain torch.

Unlike the SDXL patch files, the SD1.5 file is a set of "attention sharing" modules, one per
self- and cross-attention of the SD1.5 UNet (32 of them), keyed
``hookers.layers.<i>.<name>``. For a single image (upstream's ``frames=1``, no control input,
as the transparent-foreground model is used) each module does, for the attention input ``h``
(the block's normalised hidden states) and its context:

1. the original attention with LoRA-changed weights: ``W + up @ down`` for ``to_q``, ``to_k``,
   ``to_v`` and ``to_out.0`` (rank 256, no scale);
2. a "temporal" branch on ``y = h + attention``: LayerNorm (eps 1e-6), ``temporal_i``, then
   self-attention across frames. With one frame the softmax weighs one key by 1, so that
   attention returns its value: ``temporal_o(temporal_v(.))`` (``temporal_q`` and
   ``temporal_k`` have no effect);
3. the module returns ``attention + temporal(y)`` (the transformer block adds the residual).

So part 1 is four ordinary weight differences (``("diff", ...)`` patches, as for SDXL) and
part 2 is a small residual module that wraps the original attention (``TemporalResidual``,
installed by the node as an object patch). ``SD15_ATTENTION_MODULES`` lists where the 32
modules go, in the file's index order.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .listing import abbreviate, counted_lists

__all__ = [
    "SD15_ATTENTION_MODULES",
    "check_attention_sharing_keys",
    "is_attention_sharing_file",
    "split_attention_sharing",
    "TemporalResidual",
]

_SD15_BLOCKS = (
    "input_blocks.1.1", "input_blocks.2.1", "input_blocks.4.1", "input_blocks.5.1",
    "input_blocks.7.1", "input_blocks.8.1",
    "output_blocks.3.1", "output_blocks.4.1", "output_blocks.5.1", "output_blocks.6.1",
    "output_blocks.7.1", "output_blocks.8.1", "output_blocks.9.1", "output_blocks.10.1",
    "output_blocks.11.1", "middle_block.1",
)
#: Index in the file -> attention module of the SD1.5 UNet (under ``diffusion_model.``).
SD15_ATTENTION_MODULES: Tuple[str, ...] = tuple(
    f"{block}.transformer_blocks.0.{attn}" for block in _SD15_BLOCKS for attn in ("attn1", "attn2")
)
_PROJECTIONS = {"to_q_lora": "to_q", "to_k_lora": "to_k", "to_v_lora": "to_v",
                "to_out_lora": "to_out.0"}
_TEMPORAL = ("temporal_i", "temporal_n", "temporal_q", "temporal_k", "temporal_v", "temporal_o")
_KEY = re.compile(r"^hookers\.layers\.(\d+)\.(?:(to_(?:q|k|v|out)_lora)\.0\.(down|up)\.weight|"
                  r"(temporal_[inqkvo])\.(weight|bias))$")
_LIST_LIMIT = 3


def _abbreviate(items: List[str]) -> str:
    return abbreviate(items, _LIST_LIMIT)


def _expected_keys() -> List[str]:
    keys = []
    for index in range(len(SD15_ATTENTION_MODULES)):
        for lora in _PROJECTIONS:
            keys += [f"hookers.layers.{index}.{lora}.0.down.weight",
                     f"hookers.layers.{index}.{lora}.0.up.weight"]
        for name in _TEMPORAL:
            keys += [f"hookers.layers.{index}.{name}.weight", f"hookers.layers.{index}.{name}.bias"]
    return keys


def is_attention_sharing_file(keys: Iterable[str]) -> bool:
    """Whether most names look like the SD1.5 attention-sharing layout."""
    keys = list(keys)
    return bool(keys) and sum(1 for k in keys if k.startswith("hookers.layers.")) > len(keys) / 2


def check_attention_sharing_keys(keys: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``keys`` are exactly the SD1.5 transparent-attention layout
    (32 modules x (4 LoRA pairs + 6 temporal layers with bias) = 640 tensors)."""
    keys = set(keys)
    expected = _expected_keys()
    missing = [k for k in expected if k not in keys]
    unexpected = sorted(k for k in keys if not _KEY.match(k) or k not in set(expected))
    if missing or unexpected:
        parts = [f"not the SD1.5 transparent attention file (layer_sd15_transparent_attn): "
                 f"{len(keys)} tensors, expected {len(expected)}"]
        parts += counted_lists((("missing", missing), ("unexpected", unexpected)), limit=_LIST_LIMIT)
        raise ValueError("; ".join(parts))


def split_attention_sharing(
    state_dict: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, Tuple[int, ...]],
    *,
    source: str = "the SD1.5 attention file",
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Dict[str, torch.Tensor]]]:
    """Split the file into weight differences and temporal-branch weights, checked on a model.

    Parameters
    ----------
    state_dict : mapping
        The file's tensors (``hookers.layers.<i>.*``).
    target_shapes : mapping of str to shape
        The target model's weights (ComfyUI: ``model.model.state_dict()`` shapes, keys starting
        with ``diffusion_model.``).
    source : str
        Name of the file, for messages.

    Returns
    -------
    (deltas, temporal)
        ``deltas``: ``{"diffusion_model.<module>.to_q.weight": up @ down, ...}`` float32, the
        target's shapes; ``temporal``: ``{"diffusion_model.<module>": {"temporal_i.weight": ...}}``.

    Raises
    ------
    ValueError
        The keys are not the layout, or the model lacks a module or has other shapes (an SD1.5
        file on an SDXL or Flux model); the message counts and names them.
    """
    try:
        check_attention_sharing_keys(state_dict.keys())
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    deltas: Dict[str, torch.Tensor] = {}
    temporal: Dict[str, Dict[str, torch.Tensor]] = {}
    missing, misfit = [], []
    for index, module in enumerate(SD15_ATTENTION_MODULES):
        prefix, path = f"hookers.layers.{index}.", f"diffusion_model.{module}"
        for lora, projection in _PROJECTIONS.items():
            key = f"{path}.{projection}.weight"
            up = state_dict[f"{prefix}{lora}.0.up.weight"]
            down = state_dict[f"{prefix}{lora}.0.down.weight"]
            shape = (up.shape[0], down.shape[1])
            if key not in target_shapes:
                missing.append(key)
            elif tuple(target_shapes[key]) != shape or up.shape[1] != down.shape[0]:
                misfit.append(f"{key} (file gives {shape}, model has {tuple(target_shapes[key])})")
            else:
                deltas[key] = up.float() @ down.float()
        temporal[path] = {f"{name}.{part}": state_dict[f"{prefix}{name}.{part}"]
                          for name in ("temporal_i", "temporal_n", "temporal_v", "temporal_o")
                          for part in ("weight", "bias")}
        width = temporal[path]["temporal_i.weight"].shape
        out_key = f"{path}.to_out.0.weight"
        if out_key in target_shapes and tuple(width) != (target_shapes[out_key][0],) * 2:
            misfit.append(f"{path}.temporal_i (file gives {tuple(width)}, attention width "
                          f"{target_shapes[out_key][0]})")
    if missing or misfit:
        lines = [f"{source} does not fit this model."]
        if missing:
            lines.append(f"{len(missing)} weights do not exist in the model: {_abbreviate(missing)}.")
        if misfit:
            lines.append(f"{len(misfit)} have incompatible shapes: {_abbreviate(misfit)}.")
        lines.append("layer_sd15_* files patch SD1.5 models, layer_xl_* files SDXL models; Flux "
                     "uses the layerlora LoRA through Load LoRA instead.")
        raise ValueError(" ".join(lines))
    return deltas, temporal


class TemporalResidual(nn.Module):
    """Wraps an attention module: ``out = attention(x, ...)``; returns
    ``out + temporal_o(temporal_v(temporal_i(LayerNorm(x + out))))`` (see the module notes).

    The wrapped attention's own sub-modules (``to_q``, ``to_k``, ``to_v``, ``to_out``) are
    registered here under the same names, so that while the wrapper replaces the attention the
    model's module tree and weight names are unchanged: the host finds, moves and patches those
    weights (its ``("diff", ...)`` patches) exactly as without the wrapper. The attention
    itself is kept in a list (outside the tree, so nothing is listed twice) and called as is.
    The temporal weights are non-persistent buffers: they move with the model and never
    appear in its state dict.
    """

    def __init__(self, attention: nn.Module, weights: Mapping[str, torch.Tensor], scale: float = 1.0):
        super().__init__()
        for name, child in attention.named_children():
            self.add_module(name, child)
        self._wrapped = [attention]
        self.scale = float(scale)  # the patch strength; 1 = as trained
        for name, tensor in weights.items():
            self.register_buffer(name.replace(".", "_"), tensor.detach().clone(), persistent=False)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            # heads, dim_head ... of the wrapped attention, for code that reads them.
            wrapped = self.__dict__.get("_wrapped")
            if wrapped is None:
                raise
            return getattr(wrapped[0], name)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self._wrapped[0](x, *args, **kwargs)
        y = x + out
        cast = lambda name: getattr(self, name).to(device=y.device, dtype=y.dtype)  # noqa: E731
        h = F.layer_norm(y, (y.shape[-1],), cast("temporal_n_weight"), cast("temporal_n_bias"), 1e-6)
        h = F.linear(h, cast("temporal_i_weight"), cast("temporal_i_bias"))
        h = F.linear(h, cast("temporal_v_weight"), cast("temporal_v_bias"))
        h = F.linear(h, cast("temporal_o_weight"), cast("temporal_o_bias"))
        return out + h * self.scale if self.scale != 1.0 else out + h
