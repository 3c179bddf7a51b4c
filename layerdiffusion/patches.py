"""Layer Diffusion UNet patch files (``layer_xl_transparent_attn`` / ``_conv``) as weight diffs.

File format (upstream): a safetensors file whose keys are ``<model key>::<patch type>::<index>``.
``<model key>`` names a weight of the diffusion model as ComfyUI's ModelPatcher sees it (for
SDXL, ``diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight`` and so on).

- ``lora``: index 0 is the up matrix ``[out, rank(, 1, 1)]``, index 1 the down matrix
  ``[rank, in(, kh, kw)]``, optional index 2 a scalar alpha (scale ``alpha / rank``; scale 1
  when absent). The weight change is ``up @ down`` (flattened), reshaped to the weight's shape.
- ``diff``: index 0 is the full weight difference, same shape as the weight.

Recent ComfyUI hosts no longer recognise the old ``("lora", ...)`` tuple patches, so
``patches_from_state_dict`` folds every entry into ``{model_key: ("diff", (delta,))}`` with the
strength already multiplied in; a node adds them with ``model.clone().add_patches(patches,
1.0)``. Folding materialises each low-rank product as a full-size tensor (as large as the
patched weights), which is the price of the ``diff`` format.
"""
from __future__ import annotations

import math
import os
from typing import Dict, Mapping, Optional, Tuple, Union

import torch

from .weights import (
    PATCH_FILE_NAMES,
    WeightFileError,
    _abbreviate,
    _expected_hint,
    guess_weight_kind,
    read_safetensors,
)

__all__ = [
    "PatchDict",
    "PATCH_TYPES",
    "read_patch_file",
    "group_patch_entries",
    "check_patch_targets",
    "patches_from_state_dict",
    "load_patches",
    "apply_patches_to_state_dict",
]

PatchDict = Dict[str, Tuple[str, Tuple[torch.Tensor]]]
PATCH_TYPES = ("lora", "diff")
_LORA_UP, _LORA_DOWN, _LORA_ALPHA = 0, 1, 2

# model key -> patch type -> index -> tensor
_Grouped = Dict[str, Dict[str, Dict[int, torch.Tensor]]]


def group_patch_entries(
    state_dict: Mapping[str, torch.Tensor], *, source: str = "the patch file"
) -> _Grouped:
    """Split ``<model key>::<type>::<index>`` keys into ``{model_key: {type: {index: t}}}``.

    Raises
    ------
    WeightFileError
        A key is not in that form, a type is unknown, or a ``lora`` entry lacks up/down or has
        ranks that do not agree (the message names the file kind when it is not a patch file).
    """
    grouped: _Grouped = {}
    malformed = []
    for key, tensor in state_dict.items():
        parts = key.rsplit("::", 2)
        if len(parts) != 3 or not parts[0] or not parts[2].isdigit():
            malformed.append(key)
            continue
        model_key, patch_type, index = parts
        grouped.setdefault(model_key, {}).setdefault(patch_type, {})[int(index)] = tensor
    if malformed or not grouped:
        kind = guess_weight_kind(state_dict.keys())
        raise WeightFileError(
            f"{source} is not a Layer Diffusion patch file: {len(malformed)} of {len(state_dict)} "
            f"keys are not '<model key>::<type>::<index>' (e.g. {_abbreviate(malformed, 3)}); "
            f"it looks like {kind}.{_expected_hint(' or '.join(PATCH_FILE_NAMES))}"
        )
    problems = []
    for model_key, types in grouped.items():
        for patch_type, entries in types.items():
            if patch_type not in PATCH_TYPES:
                problems.append(f"{model_key}: unknown patch type {patch_type!r}")
            elif patch_type == "diff" and 0 not in entries:
                problems.append(f"{model_key}: 'diff' without index 0")
            elif patch_type == "lora":
                if _LORA_UP not in entries or _LORA_DOWN not in entries:
                    problems.append(f"{model_key}: 'lora' needs index 0 (up) and 1 (down)")
                    continue
                up, down = entries[_LORA_UP], entries[_LORA_DOWN]
                if up.ndim < 2 or down.ndim < 2 or up.shape[1] != down.shape[0]:
                    problems.append(
                        f"{model_key}: lora up {tuple(up.shape)} and down {tuple(down.shape)} "
                        "ranks do not match"
                    )
                extra = set(entries) - {_LORA_UP, _LORA_DOWN, _LORA_ALPHA}
                if extra:
                    problems.append(f"{model_key}: unsupported lora entries {sorted(extra)}")
    if problems:
        raise WeightFileError(
            f"{source} has {len(problems)} malformed patch entries: {_abbreviate(problems)}."
        )
    return grouped


def read_patch_file(path: Union[str, os.PathLike]) -> Dict[str, torch.Tensor]:
    """Read a Layer Diffusion patch file (safetensors only) and check its key format.

    Returns
    -------
    dict of str to torch.Tensor
        The raw entries, keys ``<model key>::<type>::<index>``.
    """
    state_dict = read_safetensors(path, expected_name=" or ".join(PATCH_FILE_NAMES))
    group_patch_entries(state_dict, source=repr(str(path)))
    return state_dict


def _target_shape(value) -> Tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def _delta_shape(patch_type: str, entries: Dict[int, torch.Tensor]) -> Tuple[int, ...]:
    """The natural shape of one entry's weight change (before fitting to a target)."""
    if patch_type == "diff":
        return tuple(entries[0].shape)
    up, down = entries[_LORA_UP], entries[_LORA_DOWN]
    if down.ndim > 2:  # convolution: [out, in, kh, kw]
        return (up.shape[0],) + tuple(down.shape[1:])
    return (up.shape[0], down.shape[1])


def _compatible(patch_type: str, entries: Dict[int, torch.Tensor], target: Tuple[int, ...]) -> bool:
    if patch_type == "diff":
        return tuple(entries[0].shape) == target
    shape = _delta_shape(patch_type, entries)
    # A low-rank product is [out, in * kh * kw]; it fits any weight with that many elements
    # and the same output dimension (e.g. a 1x1 conv patched with 2-D matrices).
    return len(target) >= 1 and target[0] == shape[0] and math.prod(target) == math.prod(shape)


def check_patch_targets(
    state_dict: Mapping[str, torch.Tensor],
    target_shapes: Mapping[str, object],
    *,
    source: str = "the patch file",
) -> None:
    """Raise unless every patched weight exists in the target model with a compatible shape.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Raw patch file entries (``<model key>::<type>::<index>``).
    target_shapes : mapping of str to shape or tensor
        The target model's weights, ``{name: shape}`` or a state dict (for ComfyUI,
        ``model.model.state_dict()``, whose keys start with ``diffusion_model.``).
    source : str
        Name of the patch file, for the message.

    Raises
    ------
    WeightFileError
        With counts and examples of missing keys and of shape mismatches, and the likely cause
        (a patch made for another base model, e.g. an SD1.5 file on SDXL).
    """
    grouped = group_patch_entries(state_dict, source=source)
    missing, misfit = [], []
    for model_key, types in grouped.items():
        if model_key not in target_shapes:
            missing.append(model_key)
            continue
        target = _target_shape(target_shapes[model_key])
        for patch_type, entries in types.items():
            if not _compatible(patch_type, entries, target):
                misfit.append(
                    f"{model_key} ({patch_type} gives {_delta_shape(patch_type, entries)}, "
                    f"model has {target})"
                )
    if not (missing or misfit):
        return
    lines = [f"{source} does not fit this model ({len(grouped)} patched weights)."]
    if missing:
        lines.append(f"{len(missing)} weights do not exist in the model: {_abbreviate(missing)}.")
    if misfit:
        lines.append(f"{len(misfit)} have incompatible shapes: {_abbreviate(misfit)}.")
    lines.append(
        "The patch was made for a different base model: layer_xl_* files patch SDXL models, "
        "layer_sd15_* files SD1.5 models. Load the matching checkpoint or patch file."
    )
    raise WeightFileError(" ".join(lines))


def _fold(
    patch_type: str,
    entries: Dict[int, torch.Tensor],
    strength: float,
    shape: Tuple[int, ...],
) -> torch.Tensor:
    """One entry's weight change times ``strength``, as a float32 tensor of ``shape``."""
    if patch_type == "diff":
        return entries[0].float().reshape(shape) * strength
    up, down = entries[_LORA_UP].float(), entries[_LORA_DOWN].float()
    delta = up.flatten(1) @ down.flatten(1)
    alpha = entries.get(_LORA_ALPHA)
    if alpha is not None:
        delta = delta * (float(alpha) / down.shape[0])
    return (delta * strength).reshape(shape)


def patches_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    strength: float = 1.0,
    *,
    target_shapes: Optional[Mapping[str, object]] = None,
    dtype: Optional[torch.dtype] = None,
    source: str = "the patch file",
) -> PatchDict:
    """Turn a patch file's entries into ComfyUI ``("diff", (delta,))`` patches.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Raw entries from ``read_patch_file``.
    strength : float
        Multiplies every weight change (1.0 = as trained).
    target_shapes : mapping, optional
        The target model's ``{name: shape}`` (or state dict). When given, everything is checked
        first with ``check_patch_targets`` and each delta takes the target weight's shape;
        otherwise ``lora`` deltas take ``[out, in]`` or ``[out, in, kh, kw]`` from the factors.
    dtype : torch.dtype, optional
        dtype of the deltas; default: that of the file's tensors (half precision for the
        published files, which halves memory). Products are computed in float32 either way.
    source : str
        Name of the file, for error messages.

    Returns
    -------
    dict
        ``{model_key: ("diff", (delta,))}``. When one weight has both a ``lora`` and a ``diff``
        entry, their changes are summed.
    """
    is_number = isinstance(strength, (int, float)) and not isinstance(strength, bool)
    if not is_number or not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number; got {strength!r}.")
    grouped = group_patch_entries(state_dict, source=source)
    if target_shapes is not None:
        check_patch_targets(state_dict, target_shapes, source=source)
    patches: PatchDict = {}
    for model_key, types in grouped.items():
        if target_shapes is not None:
            shape = _target_shape(target_shapes[model_key])
        else:
            shape = _delta_shape(*next(iter(types.items())))
        delta = None
        for patch_type, entries in types.items():
            part = _fold(patch_type, entries, float(strength), shape)
            delta = part if delta is None else delta + part
        out_dtype = dtype or next(iter(next(iter(types.values())).values())).dtype
        patches[model_key] = ("diff", (delta.to(out_dtype),))
    return patches


def load_patches(
    path: Union[str, os.PathLike],
    strength: float = 1.0,
    *,
    target_shapes: Optional[Mapping[str, object]] = None,
    dtype: Optional[torch.dtype] = None,
) -> PatchDict:
    """``read_patch_file`` then ``patches_from_state_dict`` (checked against the target)."""
    state_dict = read_patch_file(path)
    return patches_from_state_dict(
        state_dict, strength, target_shapes=target_shapes, dtype=dtype, source=repr(str(path))
    )


def apply_patches_to_state_dict(
    state_dict: Mapping[str, torch.Tensor], patches: PatchDict
) -> Dict[str, torch.Tensor]:
    """Return a new state dict with every ``("diff", (delta,))`` patch added (for tests/tools).

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Model weights; not modified.
    patches : dict
        From ``patches_from_state_dict``.

    Returns
    -------
    dict of str to torch.Tensor
        ``W + delta`` (in ``W``'s dtype) for patched names, the original tensors otherwise.
    """
    missing = [k for k in patches if k not in state_dict]
    if missing:
        raise WeightFileError(
            f"{len(missing)} patched weights are not in the state dict: {_abbreviate(missing)}."
        )
    out = dict(state_dict)
    for key, (patch_type, tensors) in patches.items():
        if patch_type != "diff":
            raise ValueError(f"{key}: only 'diff' patches are supported, got {patch_type!r}.")
        weight, delta = state_dict[key], tensors[0]
        if tuple(delta.shape) != tuple(weight.shape):
            raise WeightFileError(
                f"{key}: patch shape {tuple(delta.shape)} differs from weight "
                f"{tuple(weight.shape)}."
            )
        out[key] = weight + delta.to(device=weight.device, dtype=weight.dtype)
    return out
