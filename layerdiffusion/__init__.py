"""Layer Diffusion in plain torch (no diffusers at run time).

- ``decoder``: the transparent decoder network, weight-compatible with
  ``vae_transparent_decoder.safetensors``.
- ``tta``: ``decode_transparent``: 1/2/4/8-pass test-time augmentation, any size, batches,
  per-device strategy, progress and interrupt hooks.
- ``weights``: strict safetensors-only loading with actionable errors.
- ``patches``: ``layer_xl_transparent_attn`` / ``_conv`` files as ComfyUI ``("diff", ...)``
  patches, with a check against the target model.
- ``encoder``: the transparent encoder (RGBA -> latent offset) for img2img.

Nothing here imports ComfyUI; ``nodes/`` adapts it.
"""
from .decoder import TransparentDecoderUNet
from .encoder import latent_offset, load_transparent_encoder, regulate_latent
from .patches import check_patch_targets, load_patches, patches_from_state_dict
from .tta import DecodeInterrupted, decode_transparent
from .weights import WeightFileError, load_transparent_decoder

__all__ = [
    "TransparentDecoderUNet",
    "DecodeInterrupted",
    "WeightFileError",
    "check_patch_targets",
    "decode_transparent",
    "latent_offset",
    "load_patches",
    "load_transparent_decoder",
    "load_transparent_encoder",
    "patches_from_state_dict",
    "regulate_latent",
]
