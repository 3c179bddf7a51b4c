"""Layer Diffusion in plain torch (no diffusers at run time).

- ``decoder``: the transparent decoder network, weight-compatible with
  ``vae_transparent_decoder.safetensors``.
- ``tta``: ``decode_transparent``: 1/2/4/8-pass test-time augmentation, any size, batches,
  per-device strategy, progress and interrupt hooks.
- ``weights``: strict safetensors-only loading with actionable errors.
- ``patches``: ``layer_xl_transparent_attn`` / ``_conv`` files as ComfyUI ``("diff", ...)``
  patches, with a check against the target model.
- ``encoder``: the transparent encoder (RGBA -> latent offset) for img2img.

Also: ``model_files`` (the torch-free table of published files), ``download``, ``convert``
(pickled ``TransparentVAE.pth`` -> safetensors, weights only) and ``attention_sharing`` (the SD1.5
transparent attention).

Nothing here imports ComfyUI; ``nodes/`` adapts it. The names below are imported on first use,
so that ``model_files`` can be read without loading torch.
"""
import importlib

_EXPORTS = {
    "TransparentDecoderUNet": "decoder",
    "DecodeInterrupted": "tta",
    "NonFiniteDecodeError": "tta",
    "WeightFileError": "weights",
    "check_patch_targets": "patches",
    "decode_transparent": "tta",
    "latent_offset": "encoder",
    "load_patches": "patches",
    "load_transparent_decoder": "weights",
    "load_transparent_encoder": "encoder",
    "patches_from_state_dict": "patches",
    "regulate_latent": "encoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
