"""Convert a pickled transparent VAE (``TransparentVAE.pth``, the Flux release) to safetensors.

The Flux release (RedAIGC/Flux-version-LayerDiffuse) publishes its transparent VAE as a
``torch.save`` pickle of a state dict with ``encoder.*`` (the offset encoder), ``decoder.*``
(the UNet1024 decoder) and perhaps ``sd_vae.*`` (a copy of the base VAE, not needed: ComfyUI
has its own). Opening a pickle can run code, so the file is read with
``torch.load(weights_only=True)`` only, which unpickles nothing but tensors and plain
containers and refuses everything else; nothing else ever reads it. The two networks are then
checked (names, shapes, a supported latent channel count, finite values) and written as two
safetensors files, which is all the loader nodes read.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import torch

from . import model_files
from .decoder import latent_channels_of
from .encoder import encoder_latent_channels_of, load_transparent_encoder
from .weights import WeightFileError, load_transparent_decoder

__all__ = ["ConversionError", "ConversionResult", "read_pickled_state_dict",
           "split_transparent_vae", "convert_transparent_vae", "default_output_names"]

PathLike = Union[str, os.PathLike]
_PREFIXES = ("decoder.", "encoder.")
_IGNORED_PREFIXES = ("sd_vae.",)


class ConversionError(ValueError):
    """The input cannot be converted; the message says why and what to do."""


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_transparent_vae` wrote."""

    decoder_path: Path
    encoder_path: Path
    latent_channels: int
    ignored: Tuple[str, ...]  # top-level prefixes left out (e.g. "sd_vae")


def read_pickled_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read a ``torch.save`` file with ``weights_only=True``: tensors and plain containers only.

    Raises
    ------
    FileNotFoundError
    ConversionError
        The file needs more than tensors to load (it would run code, or holds objects), is not
        a torch file, or holds no ``{name: tensor}`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist or is not a file.")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConversionError(
            f"{str(path)!r} was refused: it needs more than tensors to load (it references code "
            f"or objects: {str(error).splitlines()[0][:200]}). Only weights are read from a "
            "pickle, never code; nothing in it was run. Use the file as published, or one "
            "saved as a plain state dict.") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise ConversionError(f"{str(path)!r} is not a readable torch file: {error}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise ConversionError(f"{str(path)!r} holds {type(loaded).__name__}, not a state dict of "
                              "named tensors.")
    return dict(loaded)


def split_transparent_vae(state_dict: Mapping[str, torch.Tensor], *, source: str = "the file"
                          ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], Tuple[str, ...]]:
    """``(decoder, encoder, ignored prefixes)`` from a TransparentVAE state dict.

    A ``module.`` prefix (a DataParallel save) is removed first. Anything but ``decoder.*``,
    ``encoder.*`` and ``sd_vae.*`` is refused, so that a different model is not half-read.
    """
    items = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    parts: Dict[str, Dict[str, torch.Tensor]] = {p: {} for p in _PREFIXES}
    ignored, unknown = set(), []
    for key, tensor in items.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            parts[prefix][key[len(prefix):]] = tensor
        elif key.startswith(_IGNORED_PREFIXES):
            ignored.add(key.split(".", 1)[0])
        else:
            unknown.append(key)
    if unknown or not parts["decoder."] or not parts["encoder."]:
        shown = ", ".join(unknown[:3]) + (f", ... and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise ConversionError(
            f"{source} is not a transparent VAE (expected decoder.* and encoder.* tensors, "
            f"found {len(parts['decoder.'])} decoder and {len(parts['encoder.'])} encoder "
            f"tensors" + (f"; unknown names: {shown}" if unknown else "") + ").")
    return parts["decoder."], parts["encoder."], tuple(sorted(ignored))


def default_output_names(latent_channels: int) -> Tuple[str, str]:
    """File names written for a decoder/encoder pair: the Flux names from the table for 16
    channels; ``converted_...`` for 4."""
    if latent_channels == 16:
        return (model_files.MODEL_FILES["flux_decoder"].file_name,
                model_files.MODEL_FILES["flux_encoder"].file_name)
    return ("converted_vae_transparent_decoder.safetensors",
            "converted_vae_transparent_encoder.safetensors")


def _save_atomically(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Dict[str, str]) -> None:
    from safetensors.torch import save_file

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary), metadata=metadata)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def convert_transparent_vae(source: PathLike, output_dir: PathLike, *, force: bool = False,
                            names: Optional[Tuple[str, str]] = None) -> ConversionResult:
    """Read ``source`` safely, check both networks and write two safetensors files.

    Parameters
    ----------
    source : path
        ``TransparentVAE.pth`` (any ``torch.save`` of a state dict in that layout).
    output_dir : path
        Folder for the two files (created); nothing else is written.
    force : bool
        Replace existing output files.
    names : (str, str), optional
        Decoder and encoder file names; default :func:`default_output_names`.

    Raises
    ------
    ConversionError, WeightFileError, FileNotFoundError, FileExistsError
    """
    source = Path(source)
    label = repr(str(source))
    decoder, encoder, ignored = split_transparent_vae(read_pickled_state_dict(source), source=label)
    channels = latent_channels_of(decoder)
    if encoder_latent_channels_of(encoder) != channels:
        raise ConversionError(
            f"{label}: the decoder takes {channels} latent channels but the encoder gives "
            f"{encoder_latent_channels_of(encoder)}; the two do not belong together.")
    # The loaders' own checks (layout, supported channel count, finite values) on the tensors.
    load_transparent_decoder(decoder).to("meta")
    load_transparent_encoder(encoder).to("meta")
    decoder_name, encoder_name = names or default_output_names(channels)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    targets = (output_dir / decoder_name, output_dir / encoder_name)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist; pass --force to replace them.")
    metadata = {"converted_from": source.name, "latent_channels": str(channels)}
    _save_atomically(decoder, targets[0], metadata)
    _save_atomically(encoder, targets[1], metadata)
    # Read back through the loaders, which read safetensors only.
    load_transparent_decoder(targets[0]).to("meta")
    load_transparent_encoder(targets[1]).to("meta")
    return ConversionResult(targets[0], targets[1], channels, ignored)


__all__ += ["WeightFileError"]
