"""Reading Layer Diffusion weight files: safetensors only, strict, with errors people can act on.

Nothing here unpickles: ``torch.load`` can run code hidden in a file, so pickle-based files
(``.ckpt``, ``.pt``, ``.bin``) are refused with a message, never opened.

Errors
------
``WeightFileError`` (a ``ValueError``) for a file that is not what it should be: not
safetensors, truncated or corrupt, or the wrong model (with a guess of what it is, for example
a UNet patch file given as the decoder). ``FileNotFoundError`` when the path does not exist.
Both name the file that was expected and where upstream publishes it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch

from . import model_files
from .listing import abbreviate, counted_lists
from .decoder import (
    SUPPORTED_LATENT_CHANNELS,
    TransparentDecoderUNet,
    decoder_state_dict_shapes,
    latent_channels_of,
)

__all__ = [
    "WeightFileError",
    "DECODER_FILE_NAME",
    "ENCODER_FILE_NAME",
    "PATCH_FILE_NAMES",
    "PUBLIC_REPOSITORY",
    "read_safetensors",
    "guess_weight_kind",
    "check_state_dict",
    "check_decoder_state_dict",
    "check_finite",
    "load_transparent_decoder",
]

# Names come from the one table of published files (model_files).
DECODER_FILE_NAME = model_files.MODEL_FILES["decoder"].file_name
ENCODER_FILE_NAME = model_files.MODEL_FILES["encoder"].file_name
PATCH_FILE_NAMES = tuple(spec.file_name for spec in model_files.files_of_kind("patch"))
PUBLIC_REPOSITORY = f"{model_files.HUB_URL}/{model_files.SDXL_REPOSITORY}"
_DECODER_NAMES = " or ".join(spec.file_name for spec in model_files.files_of_kind("decoder"))
_ENCODER_NAMES = " or ".join(spec.file_name for spec in model_files.files_of_kind("encoder"))

_LIST_LIMIT = 5  # how many names an error message shows before "... and N more"

PathLike = Union[str, os.PathLike]


class WeightFileError(ValueError):
    """A weight file (or state dict) is unreadable or is not the model it should be."""


def _abbreviate(items: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    return abbreviate(items, limit)


def _expected_hint(expected_name: Optional[str]) -> str:
    if not expected_name:
        return ""
    return (f" Expected {expected_name!r} (published at {PUBLIC_REPOSITORY}; the Flux files are "
            "made by `ld-portrait models convert`).")


def _sniff_pickle(path: Path) -> Optional[str]:
    """Name the pickle-based format of a file that failed to parse as safetensors, if it is one.

    Only consulted after safetensors refused the file: a safetensors header length can start
    with any byte, so sniffing first would misjudge valid files.
    """
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head[:2] == b"PK":
        return "a zip archive (torch.save / .ckpt format, which contains a pickle)"
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle (.pt / .bin / .ckpt format)"
    return None


def read_safetensors(
    path: PathLike,
    *,
    expected_name: Optional[str] = None,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, torch.Tensor]:
    """Read every tensor of a ``.safetensors`` file, or raise an error that says what is wrong.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    expected_name : str, optional
        The published file name this was meant to be (used in error messages only).
    device : str or torch.device
        Where the tensors are created; ``"cpu"`` by default.

    Returns
    -------
    dict of str to torch.Tensor
        The tensors by name, in the file's dtypes.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or is not a file.
    WeightFileError
        The file is a pickle-based checkpoint, is truncated, or is otherwise not valid
        safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    hint = _expected_hint(expected_name)
    if not path.is_file():
        raise FileNotFoundError(
            f"Weight file not found: {str(path)!r}.{hint} Put it in ComfyUI's "
            "models/layer_model folder (or run `ld-portrait models download`)."
        )
    try:
        return load_file(str(path), device=str(device))
    except SafetensorError as error:
        pickle_kind = _sniff_pickle(path)
        if pickle_kind is not None:
            raise WeightFileError(
                f"{str(path)!r} is {pickle_kind}. Only .safetensors files are loaded, because "
                f"pickle files can run arbitrary code when opened.{hint}"
            ) from error
        size = path.stat().st_size
        raise WeightFileError(
            f"{str(path)!r} ({size} bytes) is not a valid safetensors file: {error}. It is "
            f"probably truncated (an interrupted download) or corrupt; download it again.{hint}"
        ) from error
    except OSError as error:
        raise WeightFileError(f"Could not read {str(path)!r}: {error}.{hint}") from error


def guess_weight_kind(keys: Iterable[str]) -> str:
    """Guess, from tensor names alone, what model a weight file holds.

    Parameters
    ----------
    keys : iterable of str
        Tensor names of the file.

    Returns
    -------
    str
        A short human description such as ``"a Layer Diffusion UNet patch file ..."``, or
        ``"an unknown model"``.
    """
    keys = list(keys)
    if not keys:
        return "an empty file (no tensors)"

    def share(predicate) -> float:
        return sum(1 for k in keys if predicate(k)) / len(keys)

    if share(lambda k: "::" in k) > 0.5:
        return (
            "a Layer Diffusion UNet patch file (keys '<model key>::<type>::<index>', like "
            "layer_xl_transparent_attn / _conv)"
        )
    if share(lambda k: k.startswith("model.diffusion_model.")) > 0.1:
        return "a full Stable Diffusion checkpoint"
    if share(lambda k: "lora" in k.lower()) > 0.5:
        return "a LoRA file"
    if share(lambda k: k.startswith(("encoder.", "decoder."))) > 0.8:
        return "an ordinary VAE (not the transparent decoder)"
    if share(lambda k: k.startswith("blocks.")) > 0.9:
        return "the transparent *encoder* (vae_transparent_encoder)"
    if share(lambda k: k.startswith(("input_blocks.", "diffusion_model.", "output_blocks."))) > 0.5:
        return "a diffusion UNet"
    if share(lambda k: k.startswith(("down_blocks.", "up_blocks.", "mid_block."))) > 0.5:
        return "a diffusers-style UNet (not the transparent decoder's layout)"
    return "an unknown model"


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected_shapes: Mapping[str, Tuple[int, ...]],
    *,
    what: str,
    expected_name: Optional[str] = None,
    source: str = "the state dict",
) -> None:
    """Raise ``WeightFileError`` unless ``state_dict`` has exactly the expected names and shapes.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        What was read.
    expected_shapes : mapping of str to tuple of int
        Every required name and its shape.
    what : str
        What the file should hold (for the message), e.g. ``"transparent decoder"``.
    expected_name : str, optional
        Published file name (for the message).
    source : str
        Where ``state_dict`` came from (a path), for the message.
    """
    missing = [k for k in expected_shapes if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected_shapes]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(shape)})"
        for k, shape in expected_shapes.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)
    ]
    not_float = [
        f"{k} ({state_dict[k].dtype})"
        for k in expected_shapes
        if k in state_dict and not torch.is_floating_point(state_dict[k])
    ]
    if not (missing or unexpected or misshaped or not_float):
        return
    known = sum(1 for k in state_dict if k in expected_shapes)
    if state_dict and known / len(state_dict) > 0.5:
        kind = f"a modified or incomplete {what}"
    else:
        kind = guess_weight_kind(state_dict.keys())
    lines = [
        f"{source} is not a {what} file: it has {len(state_dict)} tensors "
        f"(expected {len(expected_shapes)}) and looks like {kind}."
    ]
    lines += counted_lists((("Missing", missing), ("Unexpected", unexpected), ("Wrong shape", misshaped),
                            ("Not floating point", not_float)), "{label} {count}: {names}.", _LIST_LIMIT)
    hint = _expected_hint(expected_name)
    if hint:
        lines.append(hint.strip())
    raise WeightFileError(" ".join(lines))


def check_finite(
    state_dict: Mapping[str, torch.Tensor], *, what: str, source: str = "the state dict"
) -> None:
    """Raise ``WeightFileError`` naming ``source`` when any tensor holds NaN or infinity.

    A file with NaN weights loads without complaint and decodes every image to NaN, which later
    stages would otherwise blame on the input (one pass over the tensors; ~0.1 s for 104M).
    """
    bad = [name for name, tensor in state_dict.items()
           if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise WeightFileError(
            f"{source} is a damaged {what} file: {len(bad)} tensors hold NaN or infinite values "
            f"({_abbreviate(bad)}). Download or convert the file again.")


def check_decoder_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, source: str = "the state dict"
) -> int:
    """Raise ``WeightFileError`` unless ``state_dict`` is a transparent decoder's layout.

    The layout is that of ``vae_transparent_decoder.safetensors``: 538 tensors, diffusers key
    names. Upstream's SD1.5 decoder (``layer_sd15_vae_transparent_decoder``) has the same
    layout; the Flux decoder differs only in ``latent_conv_in.weight`` ``[64, 16, 1, 1]``.
    The latent channel count is read from that tensor; any count but 4 or 16 is refused.

    Returns
    -------
    int
        The decoder's latent channels (4 or 16).
    """
    return _check_layout(state_dict, latent_channels_of(state_dict), decoder_state_dict_shapes,
                         what="transparent decoder", expected_name=_DECODER_NAMES, source=source)


def _check_layout(state_dict: Mapping[str, torch.Tensor], channels: int, shapes_for, *, what: str,
                  expected_name: str, source: str) -> int:
    """:func:`check_state_dict` against ``shapes_for(channels)``; returns ``channels``.

    An unsupported channel count is checked against the 4-channel layout, so the error lists
    the tensors that differ from the usual file.
    """
    shapes = shapes_for(channels if channels in SUPPORTED_LATENT_CHANNELS else 4)
    check_state_dict(state_dict, shapes, what=what, expected_name=expected_name, source=source)
    return channels


def _check_dtype_for_device(device: torch.device, dtype: torch.dtype) -> None:
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating point type, got {dtype}.")
    if device.type == "cpu" and dtype != torch.float32:
        raise ValueError(
            f"dtype {dtype} on CPU is not supported (half precision is slow or missing there); "
            "use torch.float32 on CPU, float16/bfloat16 only on a GPU."
        )


def _own_memory(
    state_dict: Mapping[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> Dict[str, torch.Tensor]:
    """Copy tensors read from a file into memory of their own, on ``device`` in ``dtype``.

    safetensors maps the file into memory lazily; a network left on those pages would crash
    (SIGBUS) if the file were overwritten in place while in use, e.g. by a copy over it.
    """
    return {k: v.to(device=device, dtype=dtype, copy=True) for k, v in state_dict.items()}


def _read_weights(source, expected_name: str, device, dtype: torch.dtype):
    """``(device, state_dict, label)`` for a loader whose ``source`` is a file or a state dict.

    ``label`` names the source in error messages; ``dtype`` is checked against ``device``.
    """
    device = torch.device(device)
    _check_dtype_for_device(device, dtype)
    if isinstance(source, Mapping):
        return device, source, "the state dict"
    return device, read_safetensors(source, expected_name=expected_name), repr(str(source))


def _adopt_weights(make_network, state_dict: Mapping[str, torch.Tensor], source, *, what: str,
                   label: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Check ``state_dict`` is finite and load it, strictly, into ``make_network()``.

    Tensors read from a file (``source`` not a mapping) get memory of their own first. The
    network is built on the meta device and adopts the tensors: no random initialisation of
    parameters that would be overwritten at once. Device/dtype conversion is the caller's.
    """
    check_finite(state_dict, what=what, source=label)
    if not isinstance(source, Mapping):
        state_dict = _own_memory(state_dict, device, dtype)
    with torch.device("meta"):
        network = make_network()
    network.load_state_dict(dict(state_dict), strict=True, assign=True)
    return network


def load_transparent_decoder(
    source: Union[PathLike, Mapping[str, torch.Tensor]],
    *,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
    channels_last: Optional[bool] = None,
) -> TransparentDecoderUNet:
    """Build the transparent decoder from a ``.safetensors`` file or a state dict, strictly.

    Parameters
    ----------
    source : path or mapping of str to torch.Tensor
        ``vae_transparent_decoder.safetensors``, the SD1.5 or the converted Flux decoder (or a
        state dict with that layout); the latent channels (4 or 16) come from the weights.
    device : str or torch.device
        Where the network runs.
    dtype : torch.dtype
        ``torch.float32`` on CPU; ``float16`` or ``bfloat16`` are accepted on a GPU.
    channels_last : bool, optional
        Store convolution weights channels-last. ``None`` (default) means: on CUDA only, where
        it pays; on CPU it was measured no faster.

    Returns
    -------
    TransparentDecoderUNet
        In eval mode, gradients off, on ``device`` in ``dtype``. When ``source`` is a state
        dict already on ``device`` in ``dtype``, the network shares those tensors.

    Raises
    ------
    FileNotFoundError, WeightFileError
        See ``read_safetensors`` and ``check_decoder_state_dict``.
    ValueError
        A half-precision dtype on CPU.
    """
    device, state_dict, label = _read_weights(source, DECODER_FILE_NAME, device, dtype)
    channels = check_decoder_state_dict(state_dict, source=label)
    network = _adopt_weights(lambda: TransparentDecoderUNet(channels), state_dict, source,
                             what="transparent decoder", label=label, device=device, dtype=dtype)
    # Named in errors about the output (a NaN decode): tta reads this attribute.
    network.weight_source = label
    if channels_last is None:
        channels_last = device.type == "cuda"
    network = network.to(device=device, dtype=dtype)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network.eval().requires_grad_(False)
