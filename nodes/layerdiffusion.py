"""Layer Diffusion nodes: patch the SDXL or SD1.5 UNet, load the transparent decoder, decode RGBA.

Thin adapters over ``layerdiffusion/`` (plain torch, no diffusers):

- ``LDPLayerDiffusionPatch``: a ``layer_xl_transparent_attn`` / ``_conv`` (SDXL) or
  ``layer_sd15_transparent_attn`` (SD1.5) file from ``models/layer_model`` becomes
  ``("diff", (delta,))`` weight patches on a clone of the MODEL (the SD1.5 file adds its
  temporal attention modules as object patches).
  The host adds ``strength * delta`` to each weight when it loads the model (ComfyUI 0.3.x to
  0.8.x handle ``("diff", ...)`` patches the same way; the old ``("lora", ...)`` tuples are no
  longer recognised by recent hosts, so low-rank entries are folded into full deltas).
- ``LDPTransparentDecoderLoader``: a transparent decoder file (SDXL, SD1.5 or Flux) -> a typed
  ``TransparentDecoder`` (network, device, dtype) that the host caches between runs.
- ``LDPTransparentDecode``: LATENT (4 channels for SD1.5/SDXL, 16 for Flux) + the ordinary VAE
  decode of it -> foreground, alpha (1 = opaque), RGBA and a checkerboard preview, with
  test-time augmentation (1/2/4/8 passes), a progress bar per pass and Cancel support.

``models/layer_model`` (the folder other Layer Diffusion packs use, so weights already
downloaded are found) is registered with the host's ``folder_paths`` the first time a node
lists its files, never at import: the pack imports without the host. Outside ComfyUI (tests,
scripts) the files are listed from the folder named by ``LDP_LAYER_MODEL_DIR``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..layerdiffusion import model_files
from . import _host as host
from ._common import Progress, check_interrupt
from ._schema import Output, choice, comfy_node, image, node_mappings, number, socket, whole_number

CATEGORY = "LD-Portrait/layer diffusion"
LAYER_MODEL_FOLDER = "layer_model"
LAYER_MODEL_EXTENSIONS = frozenset({".safetensors"})
LAYER_MODEL_DIR_ENV = "LDP_LAYER_MODEL_DIR"
DECODER_TYPE = "LDP_TRANSPARENT_DECODER"
# Published names from the one torch-free table (listing files must not import torch).
DEFAULT_DECODER_FILE = model_files.MODEL_FILES["decoder"].file_name
KNOWN_PATCH_FILES = tuple(spec.file_name for spec in model_files.files_of_kind("patch", "attn_sharing"))
KNOWN_DECODER_FILES = tuple(spec.file_name for spec in model_files.files_of_kind("decoder"))
PASSES = ("8", "4", "2", "1")
_DOWNLOAD_HINT = ("Download the Layer Diffusion files with `ld-portrait models download --family "
                  "sdxl|sd15|flux` (or from https://huggingface.co/LayerDiffusion/layerdiffusion-v1) "
                  "into ComfyUI/models/layer_model.")


# --- model folder ------------------------------------------------------------------------------

def register_layer_model_folder():
    """Register ``models/layer_model`` with the host; return ``folder_paths`` (None without host).

    Only adds what is missing: a registration made earlier (by another Layer Diffusion pack or
    ``extra_model_paths.yaml``) is kept, and the default folder is appended to its paths.
    """
    folder_paths = host.folder_paths()
    if folder_paths is None:
        return None
    default = os.path.join(folder_paths.models_dir, LAYER_MODEL_FOLDER)
    entry = folder_paths.folder_names_and_paths.get(LAYER_MODEL_FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[LAYER_MODEL_FOLDER] = (
            [default], set(LAYER_MODEL_EXTENSIONS))
    elif isinstance(entry[0], list) and default not in entry[0]:
        entry[0].append(default)
    return folder_paths


def _env_folder() -> Path | None:
    text = os.environ.get(LAYER_MODEL_DIR_ENV, "").strip()
    return Path(text).expanduser() if text else None


def list_layer_model_files() -> list[str]:
    """Names of the ``.safetensors`` files in ``models/layer_model`` (sorted)."""
    folder_paths = register_layer_model_folder()
    if folder_paths is not None:
        names = folder_paths.get_filename_list(LAYER_MODEL_FOLDER)
    else:
        folder = _env_folder()
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder and folder.is_dir() else []
    return sorted(n for n in names if os.path.splitext(n)[1].lower() in LAYER_MODEL_EXTENSIONS)


def resolve_layer_model(name: str) -> Path:
    """Full path of a file chosen from ``models/layer_model``.

    Raises
    ------
    FileNotFoundError
        The file is not there; the message says where it was looked for and how to get it.
    ValueError
        ``name`` is not a plain ``.safetensors`` file name inside the folder.
    """
    name = str(name).strip()
    if os.path.splitext(name)[1].lower() not in LAYER_MODEL_EXTENSIONS:
        raise ValueError(f"{name!r} is not a .safetensors file; pick a file from models/layer_model.")
    folder_paths = register_layer_model_folder()
    if folder_paths is not None:
        full = folder_paths.get_full_path(LAYER_MODEL_FOLDER, name)
        if full is None:
            where = ", ".join(folder_paths.get_folder_paths(LAYER_MODEL_FOLDER))
            raise FileNotFoundError(f"{name!r} is not in the layer_model folder ({where}). "
                                    f"{_DOWNLOAD_HINT}")
        return Path(full)
    folder = _env_folder()
    if folder is None:
        raise FileNotFoundError(
            f"cannot find {name!r}: not running inside ComfyUI and {LAYER_MODEL_DIR_ENV} is not "
            f"set. Set {LAYER_MODEL_DIR_ENV} to the folder that holds the Layer Diffusion files.")
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents:
        raise ValueError(f"{name!r} points outside {folder}; pick a file from that folder.")
    if not path.is_file():
        raise FileNotFoundError(f"{name!r} is not in {folder}. {_DOWNLOAD_HINT}")
    return path


def _file_combo(name: str, preferred: tuple[str, ...], tooltip: str):
    """COMBO of the folder's files. When the folder is empty the published names are listed,
    so a shared workflow still loads and running it says which file is missing and how to get
    it (instead of the host's bare 'value not in list')."""
    names = list_layer_model_files() or list(preferred)
    # The published name, also when it sits in a sub-folder ("sdxl/layer_xl_...").
    matches = [n for p in preferred for n in names
               if n == p or n.replace("\\", "/").endswith("/" + p)]
    default = matches[0] if matches else names[0]
    return choice(name, names, default, tooltip)


def _file_fingerprint(name: str):
    try:
        stat = resolve_layer_model(name).stat()
    except (OSError, ValueError):
        return float("nan")  # never equal to itself: the host re-runs the node and reports it
    return f"{name}|{stat.st_size}|{stat.st_mtime_ns}"


# --- patch -------------------------------------------------------------------------------------

def _model_kind(model) -> str:
    """The host's name for the connected model's architecture (``SDXL``, ``SD15`` ...)."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return type(config).__name__ if config is not None else "unknown"


# The last file's deltas, kept so that changing only the strength does not read and fold the
# file again (for the SDXL attention patch that is ~1 GB of low-rank products). It costs no
# extra memory while the patched MODEL that holds the same tensors is alive.
_FOLDED_CACHE: dict = {}


def _folded_patches(path: Path, label: str, targets: dict, model_kind: str) -> tuple:
    """``(patches, residuals)`` at strength 1 for the target model, checked against it.

    ``patches``: ``{weight key: ("diff", (delta,))}``; ``residuals``: ``{module key: temporal
    weights}`` for the SD1.5 attention-sharing file (empty for the SDXL patch files).
    """
    from ..layerdiffusion.attention_sharing import is_attention_sharing_file, split_attention_sharing
    from ..layerdiffusion.patches import patches_from_state_dict, read_patch_file
    from ..layerdiffusion.weights import WeightFileError, read_safetensors

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, hash(frozenset(targets.items())))
    if key in _FOLDED_CACHE:
        return _FOLDED_CACHE[key]
    entries = read_safetensors(path, expected_name=" or ".join(KNOWN_PATCH_FILES))
    residuals = {}
    try:
        if is_attention_sharing_file(entries):
            try:
                deltas, residuals = split_attention_sharing(entries, targets, source=repr(label))
            except ValueError as error:
                raise WeightFileError(str(error)) from None
            file_dtype = next(iter(entries.values())).dtype
            patches = {k: ("diff", (v.to(file_dtype),)) for k, v in deltas.items()}
        else:
            entries = read_patch_file(path)
            # Strength 1 here; the host multiplies by the strength given to add_patches.
            patches = patches_from_state_dict(entries, 1.0, target_shapes=targets, source=repr(label))
    except WeightFileError as error:
        raise WeightFileError(f"{error} The connected model is {model_kind}.") from error
    _FOLDED_CACHE.clear()
    _FOLDED_CACHE[key] = (patches, residuals)
    return patches, residuals


@comfy_node
class LDPLayerDiffusionPatch:
    DISPLAY_NAME = "Apply Layer Diffusion (LD-Portrait)"
    DESCRIPTION = (
        "Turn an SDXL or SD1.5 model into a transparent-image generator with a Layer Diffusion "
        "file from models/layer_model: layer_xl_transparent_attn or layer_xl_transparent_conv "
        "for SDXL, layer_sd15_transparent_attn for SD1.5 (Flux uses the layerlora LoRA through "
        "core Load LoRA instead). Works on a copy of the model: the original stays unpatched. "
        "Sample with the patched model, decode with VAE Decode, then feed the latent and the "
        "decoded image to Transparent Decode to get alpha. A patch made for another base model "
        "(an SD1.5 file on SDXL) is refused with a message naming the mismatch.")
    CATEGORY = CATEGORY
    FUNCTION = "patch"
    OUTPUTS = (Output("MODEL", "model", "A patched copy of the model; connect it to the sampler."),)

    @classmethod
    def inputs(cls):
        return [
            socket("model", "MODEL", "The SDXL or SD1.5 model to patch (from Load Checkpoint)."),
            _file_combo("patch_file", KNOWN_PATCH_FILES, (
                "Layer Diffusion UNet patch in models/layer_model: for SDXL "
                "layer_xl_transparent_attn (attention injection, the usual choice) or "
                "layer_xl_transparent_conv (conv injection); for SD1.5 "
                "layer_sd15_transparent_attn. Checked against the connected model.")),
            number("strength", 1.0, -2.0, 2.0, (
                "How strongly the patch is applied; 1.0 as trained. Lower values give weaker "
                "transparency."), step=0.05),
        ]

    @classmethod
    def IS_CHANGED(cls, patch_file, **_inputs):
        # Re-run when the file on disk is replaced (for example after a re-download).
        return _file_fingerprint(patch_file)

    def patch(self, model, patch_file, strength=1.0):
        path = resolve_layer_model(patch_file)
        targets = {key: tuple(value.shape) for key, value in model.model.state_dict().items()}
        patches, residuals = _folded_patches(path, str(patch_file), targets, _model_kind(model))
        patched = model.clone()
        added = patched.add_patches(patches, float(strength))
        if residuals:
            from ..layerdiffusion.attention_sharing import TemporalResidual

            for module_key, weights in residuals.items():
                original = patched.get_model_object(module_key)
                patched.add_object_patch(
                    module_key, TemporalResidual(original, weights, scale=float(strength)))
        if len(added) != len(patches):
            skipped = sorted(set(patches) - {k if isinstance(k, str) else k[0] for k in added})
            raise RuntimeError(
                f"the host accepted {len(added)} of {len(patches)} patches from {patch_file!r} "
                f"(refused e.g. {skipped[:3]}); this ComfyUI version names model weights "
                "differently. Please report it with your ComfyUI version.")
        return (patched,)


# --- decoder -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TransparentDecoder:
    """What ``LDPTransparentDecoderLoader`` outputs (socket type ``LDP_TRANSPARENT_DECODER``).

    Attributes
    ----------
    network : TransparentDecoderUNet
        Weights loaded, eval mode, on ``device`` in ``dtype``.
    device : torch.device
    dtype : torch.dtype
        float32 on CPU; float16/bfloat16 on a GPU where the host says so.
    file_name : str
        The file chosen in the node.
    path : str
        Where it was read from.
    """

    network: object
    device: object
    dtype: object
    file_name: str
    path: str

    def __repr__(self) -> str:
        return f"TransparentDecoder({self.file_name!r}, {self.device}, {self.dtype})"


def decoder_device_and_dtype():
    """Device and dtype for the decoder, as the host's model management decides for VAEs.

    Honours ``--cpu-vae`` and ``--fp16-vae`` / ``--bf16-vae`` / ``--fp32-vae``; otherwise half
    precision where the host would use fp16 (or bf16) on that device, as upstream runs the
    decoder. Without the host, or on CPU: float32 on CPU.
    """
    import torch

    management = host.model_management()
    if management is None:
        return torch.device("cpu"), torch.float32
    pick_device = getattr(management, "vae_device", management.get_torch_device)
    device = torch.device(pick_device())
    if device.type == "cpu":
        return device, torch.float32
    dtype = management.vae_dtype(device, allowed_dtypes=[torch.float16, torch.bfloat16])
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        dtype = torch.float32
    return device, dtype


@comfy_node
class LDPTransparentDecoderLoader:
    DISPLAY_NAME = "Load Transparent Decoder (LD-Portrait)"
    DESCRIPTION = (
        "Load a Layer Diffusion transparent decoder (SDXL, SD1.5 or Flux, from "
        "models/layer_model), which turns an ordinary VAE decode plus its latent into "
        "foreground colour and alpha. Only safetensors files are read; a wrong, truncated or "
        "incomplete file is refused with a message that says what it is. Runs where the host "
        "runs its VAE (float16 on most GPUs, float32 on CPU).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    OUTPUTS = (Output(DECODER_TYPE, "decoder", "The loaded decoder; connect it to Transparent Decode."),)

    @classmethod
    def inputs(cls):
        return [_file_combo("decoder_file", KNOWN_DECODER_FILES, (
            "Transparent decoder weights in models/layer_model: vae_transparent_decoder (SDXL), "
            "layer_sd15_vae_transparent_decoder (SD1.5) or flux_vae_transparent_decoder (Flux, made "
            "by `ld-portrait models convert`). The latent channels (4 or 16) are read from the "
            "file."))]

    @classmethod
    def IS_CHANGED(cls, decoder_file, **_inputs):
        return _file_fingerprint(decoder_file)

    def load(self, decoder_file):
        from ..layerdiffusion.weights import load_transparent_decoder

        path = resolve_layer_model(decoder_file)
        device, dtype = decoder_device_and_dtype()
        network = load_transparent_decoder(path, device=device, dtype=dtype)
        return (TransparentDecoder(network, device, dtype, str(decoder_file), str(path)),)


# --- decode ------------------------------------------------------------------------------------

def _check_decode_inputs(samples, images, decoder) -> tuple:
    """(latent [B,C,h,w], pixels [B,3,8h,8w]) or a ValueError naming the socket at fault.

    ``C`` is the decoder's ``latent_channels``: 4 (SD1.5/SDXL) or 16 (Flux)."""
    import torch

    if not isinstance(decoder, TransparentDecoder):
        raise ValueError(f"decoder must come from Load Transparent Decoder (LD-Portrait); got "
                         f"{type(decoder).__name__}.")
    latent = samples.get("samples") if isinstance(samples, dict) else None
    if not isinstance(latent, torch.Tensor) or latent.ndim != 4:
        raise ValueError("samples must be a LATENT (connect the sampler's output).")
    wanted = getattr(decoder.network, "latent_channels", 4)
    if latent.shape[1] != wanted:
        made_for = "Flux (16 channels)" if wanted == 16 else "SD1.5/SDXL (4 channels)"
        got = {16: "a Flux latent", 4: "an SD1.5/SDXL latent"}.get(latent.shape[1], "a latent")
        raise ValueError(
            f"samples has {latent.shape[1]} channels ({got}) but {decoder.file_name!r} decodes "
            f"{made_for} latents. Load the transparent decoder of the model family that made the "
            "latent.")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be an IMAGE [B, H, W, 3]; got {shape}.")
    if images.shape[0] != latent.shape[0]:
        raise ValueError(
            f"samples holds {latent.shape[0]} latents but images holds {images.shape[0]} images: "
            "connect the VAE Decode of these same samples (one image per latent).")
    height, width = images.shape[1:3]
    if (height, width) != (latent.shape[2] * 8, latent.shape[3] * 8):
        raise ValueError(
            f"images are {width}x{height} (WxH) but samples decode to "
            f"{latent.shape[3] * 8}x{latent.shape[2] * 8}: connect the VAE Decode of these same "
            "samples, without resizing, cropping or upscaling in between.")
    return latent, images[..., :3].movedim(-1, 1)


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    kinds = tuple(k for k in (getattr(torch, "OutOfMemoryError", None),
                              getattr(torch.cuda, "OutOfMemoryError", None)) if k is not None)
    return isinstance(error, kinds)


def _free_device_memory(device) -> None:
    """Ask the host to unload other models from ``device`` (no-op without host)."""
    management = host.model_management()
    if management is None:
        return
    management.free_memory(1e30, device)  # as much as can be freed: unload what is idle
    management.soft_empty_cache()


@comfy_node
class LDPTransparentDecode:
    DISPLAY_NAME = "Transparent Decode (LD-Portrait)"
    DESCRIPTION = (
        "Decode transparency: from the latent and its ordinary VAE decode, the transparent "
        "decoder predicts alpha and the foreground colour. Test-time augmentation decodes "
        "rotated and flipped copies and merges them; 8 passes is upstream's quality, 4/2/1 are "
        "proportionally faster. Any size works (padded internally to multiples of 64). Outputs "
        "foreground RGB, alpha (1 = opaque), RGBA (save it as a transparent PNG) and a preview "
        "over a grey checkerboard.")
    CATEGORY = CATEGORY
    FUNCTION = "decode"
    OUTPUTS = (
        Output("IMAGE", "foreground", "Foreground colour, RGB in 0..1 (IMAGE [B,H,W,3]); meaningful where "
                                      "alpha > 0."),
        Output("MASK", "alpha", "Alpha matte, 1 = opaque portrait, 0 = transparent (MASK [B,H,W]). Core nodes "
                                "that expect Load Image's inverted mask need 1 - alpha."),
        Output("IMAGE", "rgba", "Foreground with alpha as a fourth channel (IMAGE [B,H,W,4]); Save Image "
                                "writes it as a transparent PNG."),
        Output("IMAGE", "preview", "Foreground composited over a grey checkerboard, for a quick look (IMAGE "
                                   "[B,H,W,3])."),
    )

    @classmethod
    def inputs(cls):
        return [
            socket("samples", "LATENT", "The latent from the sampler that used the Layer Diffusion "
                                        "patched model."),
            image("images", "The ordinary VAE Decode of the same latent (same batch, not resized)."),
            socket("decoder", DECODER_TYPE, "From Load Transparent Decoder."),
            choice("passes", PASSES, "8", (
                "Test-time augmentation: 8 = four rotations x flip merged by the median, as upstream "
                "(best); 4 = four rotations; 2 = upright + upside down; 1 = a single pass (fastest). "
                "Time is proportional to the number of passes.")),
            whole_number("sub_batch", 8, 1, 64, (
                "On a GPU, how many passes/images go through the network at once; lower it if memory "
                "runs out (it is lowered automatically when the GPU runs out). On CPU passes run one "
                "by one, which was measured faster there."), step=1),
        ]

    def decode(self, samples, images, decoder, passes="8", sub_batch=8):
        import torch

        from ..layerdiffusion.preview import checkerboard_preview
        from ..layerdiffusion.tta import decode_transparent

        if str(passes) not in PASSES:
            raise ValueError(f"passes must be one of {list(PASSES)}; got {passes!r}.")
        sub_batch = int(sub_batch)
        if sub_batch < 1:
            raise ValueError(f"sub_batch must be at least 1; got {sub_batch}.")
        latent, pixels = _check_decode_inputs(samples, images, decoder)
        progress = Progress(latent.shape[0] * int(passes))

        def on_pass(done: int, total: int) -> None:
            # After an out-of-memory retry the count starts again; the bar only moves forward.
            if done > progress.done:
                progress.update(done - progress.done)

        freed = False
        while True:
            try:
                result = decode_transparent(
                    decoder.network, pixels, latent, passes=int(passes), sub_batch_size=sub_batch,
                    on_pass=on_pass, interrupt_check=check_interrupt)
                break
            except Exception as error:  # noqa: BLE001 - only out-of-memory is retried
                if not _is_out_of_memory(error):
                    raise
                if freed and sub_batch == 1:
                    raise RuntimeError(
                        "transparent decoding ran out of GPU memory even one pass at a time; "
                        "decode smaller images or start ComfyUI with --cpu-vae.") from error
                if freed:
                    sub_batch = max(1, sub_batch // 2)
                freed = True
                _free_device_memory(decoder.device)

        result = result.to(device="cpu", dtype=torch.float32)
        alpha = result[:, 0].contiguous()
        foreground = result[:, 1:].movedim(1, -1).contiguous()
        rgba = torch.cat([foreground, alpha[..., None]], dim=-1)
        preview = checkerboard_preview(foreground, alpha)
        return (foreground, alpha, rgba, preview)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(
    LDPLayerDiffusionPatch, LDPTransparentDecoderLoader, LDPTransparentDecode)
