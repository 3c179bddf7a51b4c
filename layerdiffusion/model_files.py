"""The published Layer Diffusion model files: one table, torch-free.

Read by the weight loaders (names in error messages), the downloader (URLs, hashes, content
checks), the nodes (file lists and defaults) and the workflow builder (model notes and the
editor's download links). Nothing here imports torch, so listing files in a node costs nothing.

Families
--------
``sdxl``  LayerDiffusion/layerdiffusion-v1: UNet patch files + transparent decoder/encoder.
``sd15``  the same repository: ``layer_sd15_transparent_attn`` (an attention-sharing module
          set, applied by the same patch node) + the SD1.5 transparent decoder.
``flux``  RedAIGC/Flux-version-LayerDiffuse: ``layerlora.safetensors`` (a diffusers-layout LoRA
          for FLUX.1-dev that ComfyUI's own LoRA loader applies) and ``TransparentVAE.pth`` (a
          pickle; ``ld-portrait models convert`` turns it into two safetensors files, reading
          it with ``torch.load(weights_only=True)`` only).

Facts about the Flux VAE latent (from black-forest-labs/FLUX.1-dev ``vae/config.json`` and
ComfyUI's ``latent_formats.Flux``): ``scaling_factor`` 0.3611, ``shift_factor`` 0.1159.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = [
    "ModelFile",
    "MODEL_FILES",
    "FAMILIES",
    "FAMILY_FILES",
    "LAYER_MODEL_FOLDER",
    "LORA_FOLDER",
    "HUB_URL",
    "FLUX_VAE_SCALING_FACTOR",
    "FLUX_VAE_SHIFT_FACTOR",
    "SUPPORTED_LATENT_CHANNELS",
    "DECODER_TENSOR_COUNT",
    "ENCODER_TENSOR_COUNT",
    "by_file_name",
    "files_of_kind",
    "family_files",
]

HUB_URL = "https://huggingface.co"
LAYER_MODEL_FOLDER = "layer_model"
LORA_FOLDER = "loras"
SDXL_REPOSITORY = "LayerDiffusion/layerdiffusion-v1"
FLUX_REPOSITORY = "RedAIGC/Flux-version-LayerDiffuse"
FLUX_VAE_SCALING_FACTOR = 0.3611
FLUX_VAE_SHIFT_FACTOR = 0.1159
#: Latent channels of the published decoders/encoders: 4 (SD1.5, SDXL) and 16 (Flux).
SUPPORTED_LATENT_CHANNELS: Tuple[int, ...] = (4, 16)
DECODER_TENSOR_COUNT = 538
ENCODER_TENSOR_COUNT = 18
_OPEN_LICENCE = "see the LayerDiffusion/layerdiffusion-v1 model card (not verified offline)"
_FLUX_LICENCE = ("FLUX.1 [dev] Non-Commercial License (the LoRA and VAE adapt FLUX.1-dev; "
                 "check RedAIGC/Flux-version-LayerDiffuse)")


@dataclass(frozen=True)
class ModelFile:
    """One published file.

    Attributes
    ----------
    key : str
        Short name used by ``ld-portrait models download --files``.
    file_name : str
        Name on disk (the published name, or the name ``models convert`` writes).
    kind : {"patch", "attn_sharing", "decoder", "encoder", "lora", "pickle_vae"}
        What it holds; decides the content check.
    sha256 : str or None
        Published SHA-256 (lower-case hex), when known.
    summary : str
        One line for humans.
    family : {"sdxl", "sd15", "flux"}
    folder : str
        ComfyUI ``models/`` sub-folder it belongs in.
    repository : str or None
        Hugging Face repository it is downloaded from; None for files made by
        ``ld-portrait models convert``.
    revision : str
    latent_channels : int or None
        For decoders and encoders: 4 or 16.
    licence : str
    """

    key: str
    file_name: str
    kind: str
    sha256: Optional[str]
    summary: str
    family: str = "sdxl"
    folder: str = LAYER_MODEL_FOLDER
    repository: Optional[str] = SDXL_REPOSITORY
    revision: str = "main"
    latent_channels: Optional[int] = None
    licence: str = _OPEN_LICENCE

    def url(self, base_url: str = HUB_URL) -> Optional[str]:
        """Download address on ``base_url`` (a Hub or a mirror), None for converted files."""
        if self.repository is None:
            return None
        return f"{base_url.rstrip('/')}/{self.repository}/resolve/{self.revision}/{self.file_name}"


#: The revision of LayerDiffusion/layerdiffusion-v1 whose SHA-256 values are recorded below (a
#: public ComfyUI integration pins the same revision and lists the same values). Files with a
#: recorded hash are downloaded from it, so the check holds whatever "main" becomes; the SD1.5
#: files of the same repository are pinned to it too (public integrations fetch them from this
#: revision), their hash is the server's. Files of other repositories come from "main" and the
#: server's hash is checked.
LAYER_DIFFUSION_REVISION = "e337e9d7a0f2a6fee6c3580374327380f88d065b"

MODEL_FILES: Dict[str, ModelFile] = {
    spec.key: spec
    for spec in (
        ModelFile("attn", "layer_xl_transparent_attn.safetensors", "patch",
                  "b7919c5b4837fb64f24c97a7abdf1a9c6e8d60de080a5dae089dde098266df95",
                  "SDXL UNet patch, attention injection (the usual choice)",
                  revision=LAYER_DIFFUSION_REVISION),
        ModelFile("conv", "layer_xl_transparent_conv.safetensors", "patch",
                  "5ee958d80dcd515fa7ac915274c536fadd3db5d919adeb5ff45107b6169aacc7",
                  "SDXL UNet patch, conv injection (an alternative to attn; large)",
                  revision=LAYER_DIFFUSION_REVISION),
        ModelFile("decoder", "vae_transparent_decoder.safetensors", "decoder",
                  "59dc8feefe40d26b6cb7186aed7af70c60d94ac4f9db8ebe7f121a01ba27a2fc",
                  "transparent decoder: alpha and foreground colour from a VAE decode",
                  latent_channels=4, revision=LAYER_DIFFUSION_REVISION),
        ModelFile("encoder", "vae_transparent_encoder.safetensors", "encoder", None,
                  "transparent encoder: RGBA to latent offset, for img2img", latent_channels=4),
        ModelFile("sd15_attn", "layer_sd15_transparent_attn.safetensors", "attn_sharing", None,
                  "SD1.5 transparent attention (attention-sharing modules, applied by the "
                  "same patch node)", family="sd15", revision=LAYER_DIFFUSION_REVISION),
        ModelFile("sd15_decoder", "layer_sd15_vae_transparent_decoder.safetensors", "decoder",
                  None, "SD1.5 transparent decoder", family="sd15", latent_channels=4,
                  revision=LAYER_DIFFUSION_REVISION),
        ModelFile("flux_lora", "layerlora.safetensors", "lora", None,
                  "FLUX.1-dev transparency LoRA (diffusers layout; apply it with ComfyUI's "
                  "LoraLoaderModelOnly)", family="flux", folder=LORA_FOLDER,
                  repository=FLUX_REPOSITORY, licence=_FLUX_LICENCE),
        ModelFile("flux_vae", "TransparentVAE.pth", "pickle_vae", None,
                  "Flux transparent VAE as published (a pickle; converted to "
                  "flux_vae_transparent_decoder/encoder.safetensors after download, never "
                  "loaded by the nodes)", family="flux",
                  repository=FLUX_REPOSITORY, licence=_FLUX_LICENCE),
        ModelFile("flux_decoder", "flux_vae_transparent_decoder.safetensors", "decoder", None,
                  "Flux transparent decoder (16 latent channels), written by `ld-portrait "
                  "models convert`", family="flux", repository=None, latent_channels=16,
                  licence=_FLUX_LICENCE),
        ModelFile("flux_encoder", "flux_vae_transparent_encoder.safetensors", "encoder", None,
                  "Flux transparent encoder (16 latent channels), written by `ld-portrait "
                  "models convert`", family="flux", repository=None, latent_channels=16,
                  licence=_FLUX_LICENCE),
    )
}

FAMILIES: Tuple[str, ...] = ("sdxl", "sd15", "flux")
#: What ``models download --family F`` fetches (what the shipped workflows of F need).
FAMILY_FILES: Dict[str, Tuple[str, ...]] = {
    "sdxl": ("attn", "decoder"),
    "sd15": ("sd15_attn", "sd15_decoder"),
    "flux": ("flux_lora", "flux_vae"),
}
#: Files a download of the key leads to by conversion (``flux_vae`` -> decoder + encoder).
CONVERTED_FROM: Dict[str, Tuple[str, str]] = {"flux_vae": ("flux_decoder", "flux_encoder")}

#: Other base-model files the shipped workflows name (not fetched by ``models download``).
BASE_MODELS: Dict[str, Tuple[str, str, str, str]] = {
    # key: (file name, models/ folder, URL, licence)
    "sdxl_checkpoint": (
        "sd_xl_base_1.0.safetensors", "checkpoints",
        f"{HUB_URL}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
        "CreativeML OpenRAIL++-M"),
    "sd15_checkpoint": (
        "v1-5-pruned-emaonly.safetensors", "checkpoints",
        f"{HUB_URL}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
        "v1-5-pruned-emaonly.safetensors",
        "CreativeML OpenRAIL-M"),
    "flux_unet": (
        "flux1-dev.safetensors", "diffusion_models",
        f"{HUB_URL}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors",
        "FLUX.1 [dev] Non-Commercial License (gated: accept it on Hugging Face first)"),
    "flux_clip_l": (
        "clip_l.safetensors", "text_encoders",
        f"{HUB_URL}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
        "MIT (OpenAI CLIP)"),
    "flux_t5": (
        "t5xxl_fp16.safetensors", "text_encoders",
        f"{HUB_URL}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
        "Apache-2.0 (Google T5)"),
    "flux_vae": (
        "ae.safetensors", "vae",
        f"{HUB_URL}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors",
        "FLUX.1 [dev] Non-Commercial License (gated)"),
}

__all__ += ["CONVERTED_FROM", "BASE_MODELS", "SDXL_REPOSITORY", "FLUX_REPOSITORY", "LAYER_DIFFUSION_REVISION"]


def by_file_name(file_name: str) -> Optional[ModelFile]:
    """The table entry whose file name is ``file_name`` (or ends a sub-folder path with it)."""
    base = str(file_name).replace("\\", "/").rsplit("/", 1)[-1]
    for spec in MODEL_FILES.values():
        if spec.file_name == base:
            return spec
    return None


def files_of_kind(*kinds: str, family: Optional[str] = None) -> Tuple[ModelFile, ...]:
    """Entries of the given kinds (in table order), optionally of one family."""
    return tuple(spec for spec in MODEL_FILES.values()
                 if spec.kind in kinds and (family is None or spec.family == family))


def family_files(family: str) -> Tuple[ModelFile, ...]:
    """What ``models download --family`` fetches for ``family``."""
    if family not in FAMILY_FILES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    return tuple(MODEL_FILES[key] for key in FAMILY_FILES[family])
