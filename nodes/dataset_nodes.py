"""Dataset nodes: save samples into a dataset root, composite portraits over backgrounds.

Thin adapters over :mod:`..dataset` (the writer with its atomicity, resume and several-writer
guarantees) and :mod:`..refine.composite`. Alpha sockets mean 1 = opaque portrait; an
``invert`` switch accepts core's inverted MASK.

Where ``LDPSaveDataset`` writes
-------------------------------
The dataset root is ``<output folder>/<dataset_name>``. The output folder is, in order:

1. the ``output_root`` keyword of :meth:`LDPSaveDataset.save` (not a socket: for tests and
   scripts that call the node directly);
2. ComfyUI's output folder (``folder_paths.get_output_directory()``, looked up when the node
   runs) when the host is present;
3. the environment variable ``LDP_OUTPUT_DIR`` when running without the host.

Without any of them the node refuses to run rather than guess. ``dataset_name`` must be one
plain folder name (see :func:`..dataset.validate_dataset_name`); names that try to leave the
output folder (``../x``, absolute paths, separators, NUL bytes, very long names) and a root
that is a symlink pointing elsewhere are refused before anything is written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ._common import (
    Progress,
    check_interrupt,
    image_list,
    image_tensor,
    mask_list,
    match_batch,
)

CATEGORY = "LD-Portrait/dataset"
OUTPUT_DIR_ENV = "LDP_OUTPUT_DIR"
DEFAULT_DATASET_NAME = "ld_portrait_20k"
MAX_INDEX = 2 ** 53  # the frontend stores widget values as JS numbers
#: Reject reason recorded when the keep input (not a per-image verdict) rejected a sample.
KEEP_INPUT_REASON = "keep_input_false"
BACKGROUND_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

_ALPHA_TOOLTIP = "Portrait alpha matte, 1 = opaque portrait, 0 = background (MASK [B,H,W])."
_INVERT_TOOLTIP = (
    "Turn on when the masks come from core nodes such as Load Image, whose MASK is 1 - alpha "
    "(1 = transparent); the node then uses 1 - mask as alpha.")


# --------------------------------------------------------------------------------------------
# Helpers (plain functions, tested directly)
# --------------------------------------------------------------------------------------------

def output_directory(override=None) -> Path:
    """The folder dataset roots are created in (see the module documentation for the order).

    Raises
    ------
    ValueError
        Neither an override, the host nor ``LDP_OUTPUT_DIR`` gives a folder.
    """
    if override is not None and str(override).strip():
        return Path(override).expanduser()
    try:
        import folder_paths  # host-only module
    except ImportError:
        folder_paths = None
    if folder_paths is not None:
        return Path(folder_paths.get_output_directory())
    env = os.environ.get(OUTPUT_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    raise ValueError(
        "no output folder: this is not running inside ComfyUI. Set the environment variable "
        f"{OUTPUT_DIR_ENV} to the folder that should hold the dataset, or pass output_root=.")


def parse_json_input(text, name: str, *, kinds=(dict, list), empty=None):
    """Parse a JSON STRING socket; ``empty`` is returned for a blank or unconnected input.

    Raises
    ------
    ValueError
        Not valid JSON, or not one of ``kinds``; the message names the socket and where the
        parser stopped.
    """
    if text is None:
        return empty
    if not isinstance(text, str):
        if isinstance(text, kinds):  # already parsed (a script calling the node)
            return text
        raise ValueError(f"{name} must be a JSON string, got {type(text).__name__}.")
    if not text.strip():
        return empty
    try:
        value = json.loads(text)
    except ValueError as error:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            f"{name} is not valid JSON ({error}): {shown!r}. Connect the matching output of the "
            "LD-Portrait node (for attributes: Prompt Template's 'attributes') or clear it.") from None
    if not isinstance(value, kinds):
        names = " or ".join("a JSON object" if k is dict else "a JSON list" for k in kinds)
        raise ValueError(f"{name} must be {names}, got {type(value).__name__}.")
    return value


def per_image(value, count: int, name: str) -> list:
    """Split a per-batch JSON value into one entry per image.

    A list of ``count`` entries is split (what the refine and gate nodes output for a batch);
    a one-entry list or a single object applies to every image; None stays None.
    """
    if value is None:
        return [None] * count
    if isinstance(value, list):
        if len(value) == count:
            return list(value)
        if len(value) == 1:
            return value * count
        raise ValueError(
            f"{name} holds {len(value)} entries but the batch has {count} image(s); connect the "
            "output of the node that processed this same batch.")
    return [value] * count


def decide_keep(keep: bool, verdicts: list) -> list[bool]:
    """Accept (True) or reject each image from the keep input and the per-image verdicts.

    * An image whose verdict has a boolean ``keep`` follows it, and the ``keep`` input is
      taken to be the quality gate's "every image passed" flag: a batch with one reject still
      saves the others as accepted.
    * ``keep`` False while no verdict rejects anything is a deliberate switch: every image
      is rejected.
    * Images without a verdict follow ``keep``.
    """
    own = [v.get("keep") if isinstance(v, dict) and isinstance(v.get("keep"), bool) else None
           for v in verdicts]
    veto = not keep and not any(o is False for o in own)
    return [bool(keep) if o is None else (o and not veto) for o in own]


def _models_value(text):
    """``models`` socket: JSON when it parses as an object or list, else the text itself."""
    if text is None or not str(text).strip():
        return None
    text = str(text)
    if text.lstrip()[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text.strip()


def list_background_files(folder) -> list[Path]:
    """Image files directly inside ``folder`` (PNG, JPEG, WebP, BMP, TIFF), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in BACKGROUND_SUFFIXES)


def read_background(path) -> np.ndarray:
    """A background picture as float32 RGB [H, W, 3] in 0..1 (alpha, if any, dropped).

    Raises
    ------
    ValueError
        Unreadable or not an image.
    """
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"{Path(path).name}: not a readable image.")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{Path(path).name}: unsupported sample type {image.dtype}.")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    else:
        image = image[..., 2::-1] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(image.astype(np.float32) / np.float32(scale))


# --------------------------------------------------------------------------------------------
# Save node
# --------------------------------------------------------------------------------------------

class LDPSaveDataset:
    DESCRIPTION = (
        "Save portraits into a matting dataset under ComfyUI's output folder: "
        "<output>/<dataset_name>/fg/<id>.png (padded foreground), alpha/<id>.png (refined "
        "alpha), raw_alpha/ and error_maps/ (optional), meta/<id>.json (prompt, negative, seed, "
        "attributes, models, refinement statistics, verdict) and manifest.jsonl. Ids come from "
        "sample_index: index_id(i) = '000123'; a batch of B images gets ids sample_index .. "
        "sample_index + B - 1. Writes are atomic, ids already complete are skipped (re-running "
        "a range resumes it), several ComfyUI instances may write one dataset at once, and "
        "rejected samples go to rejected/ (with images, or as a meta record only).")
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("summary",)
    OUTPUT_TOOLTIPS = (
        "What happened, one line per image: id, accepted / rejected (with or without images) "
        "or skipped (already complete), and the dataset folder.",)

    @classmethod
    def INPUT_TYPES(cls):
        def text_socket(tooltip):
            return ("STRING", {"forceInput": True, "tooltip": tooltip})

        return {
            "required": {
                "foreground": ("IMAGE", {"tooltip": (
                    "Padded foreground colour F (IMAGE [B,H,W,3], e.g. from Pad Foreground "
                    "Colour); stored as 8-bit RGB in fg/.")}),
                "alpha": ("MASK", {"tooltip": "Refined alpha to store, 1 = opaque portrait "
                                              "(MASK [B,H,W]), same size as the foreground."}),
                "dataset_name": ("STRING", {"default": DEFAULT_DATASET_NAME, "tooltip": (
                    "Folder name inside ComfyUI's output folder that holds the dataset. One "
                    "plain name: letters, digits, _ . - and inner spaces; paths such as '../x' "
                    "or '/abs' are refused.")}),
                "sample_index": ("INT", {"default": 0, "min": 0, "max": MAX_INDEX, "tooltip": (
                    "Index of the first image; its id is the index with 6 digits ('000123'). "
                    "A batch of B images gets ids index .. index+B-1. Wire the Prompt "
                    "Template's index output here so ids follow the prompts.")}),
                "keep": ("BOOLEAN", {"default": True, "tooltip": (
                    "From Matte Quality Gate's keep. With the gate's verdict wired too, each "
                    "image follows its own verdict; keep = false with no rejecting verdict "
                    "rejects the whole batch.")}),
                "keep_rejected": ("BOOLEAN", {"default": False, "tooltip": (
                    "Rejected samples: on = store their images under rejected/ for review; "
                    "off = record only their meta (verdict, prompt) under rejected/meta/, so "
                    "statistics see them and a re-run does not redo them.")}),
                "alpha_bits": (["8", "16"], {"default": "8", "tooltip": (
                    "Bit depth of the stored alpha and raw alpha PNGs.")}),
            },
            "optional": {
                "raw_alpha": ("MASK", {"tooltip": (
                    "Optional decoder alpha before refinement (1 = opaque), stored in "
                    "raw_alpha/ for audit.")}),
                "error_map": ("IMAGE", {"tooltip": (
                    "Optional error-map picture (Connectivity Refine's error_map), stored in "
                    "error_maps/.")}),
                "prompt": text_socket("Positive prompt (Prompt Template's prompt), stored in meta."),
                "negative": text_socket("Negative prompt (Prompt Template's negative), stored "
                                        "in meta."),
                "attributes": text_socket(
                    "JSON object of the chosen attributes (Prompt Template's attributes); "
                    "stored parsed in meta and the manifest. Not JSON -> an error."),
                "seed": ("INT", {"forceInput": True, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "Sampler seed of this sample (Prompt Template's seed)."}),
                "verdict": text_socket(
                    "Matte Quality Gate's verdict JSON (a list, one per image); stored per "
                    "image, and it decides accept/reject per image."),
                "stats": text_socket(
                    "Connectivity Refine's stats JSON (a list, one per image); stored per image "
                    "as 'refinement'."),
                "models": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "Which checkpoint and Layer Diffusion files made the samples (free text, or "
                    "JSON), stored in meta.")}),
                "invert": ("BOOLEAN", {"default": False, "tooltip": _INVERT_TOOLTIP}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        # Always run: the work is a cheap "already complete?" check per id, and a run after
        # files were deleted or moved must write them again.
        return float("nan")

    def save(self, foreground, alpha, dataset_name=DEFAULT_DATASET_NAME, sample_index=0,
             keep=True, keep_rejected=False, alpha_bits="8", raw_alpha=None, error_map=None,
             prompt=None, negative=None, attributes=None, seed=None, verdict=None, stats=None,
             models="", invert=False, output_root=None):
        from ..batch import tool_version
        from ..refine.validation import check_same_size
        from ..dataset import (DatasetError, DatasetWriter, dataset_root_in, index_id,
                               validate_dataset_name)

        # Everything that can be checked is checked before the first file is written.
        name = validate_dataset_name(dataset_name)
        bits = int(alpha_bits)
        if bits not in (8, 16):
            raise ValueError(f"alpha_bits must be 8 or 16, got {alpha_bits!r}.")
        if isinstance(sample_index, bool) or int(sample_index) < 0:
            raise ValueError(f"sample_index must be 0 or more, got {sample_index!r}.")
        parsed_attributes = parse_json_input(attributes, "attributes", kinds=(dict,))
        parsed_verdict = parse_json_input(verdict, "verdict")
        parsed_stats = parse_json_input(stats, "stats")
        foregrounds, alphas, raws, maps = match_batch(
            image_list(foreground, "foreground"), mask_list(alpha, "alpha", invert=invert),
            None if raw_alpha is None else mask_list(raw_alpha, "raw_alpha", invert=invert),
            None if error_map is None else image_list(error_map, "error_map"),
            names=("foreground", "alpha", "raw_alpha", "error_map"))
        count = len(alphas)
        for b in range(count):
            check_same_size(foregrounds[b], alphas[b], "foreground", "alpha")
            if raws is not None:
                check_same_size(raws[b], alphas[b], "raw_alpha", "alpha")
        verdicts = per_image(parsed_verdict, count, "verdict")
        refinements = per_image(parsed_stats, count, "stats")
        decisions = decide_keep(bool(keep), verdicts)
        ids = [index_id(int(sample_index) + b) for b in range(count)]

        output = output_directory(output_root)
        root = dataset_root_in(output, name)
        writer = DatasetWriter(root)  # DatasetError (clear message) when not writable
        if writer.root != root.resolve() or writer.root.parent != output.resolve():
            raise DatasetError(f"dataset folder {root} resolves outside {output}; refusing.")

        common = {"prompt": prompt, "negative": negative, "seed": None if seed is None else int(seed),
                  "attributes": parsed_attributes, "models": _models_value(models),
                  "tool": {"name": "ld-portrait", "version": tool_version(),
                           "node": "LDPSaveDataset"}}
        common = {key: value for key, value in common.items() if value is not None}

        progress = Progress(count)
        lines, images, done = [], [], []
        for b, sample_id in enumerate(ids):
            check_interrupt()
            status = writer.status(sample_id)
            if status is not None:
                lines.append(f"{sample_id}: skipped (already complete, {status})")
            else:
                accepted = decisions[b]
                store = accepted or bool(keep_rejected)
                meta = dict(common, sample_index=int(sample_index) + b, batch_index=b,
                            batch_size=count)
                if refinements[b] is not None:
                    meta["refinement"] = refinements[b]
                if verdicts[b] is not None:
                    meta["verdict"] = verdicts[b]
                if not accepted:
                    own = verdicts[b].get("keep") if isinstance(verdicts[b], dict) else None
                    meta["rejected_by"] = "verdict" if own is False else KEEP_INPUT_REASON
                try:
                    outcome = writer.write_sample(
                        sample_id, foregrounds[b], alphas[b], meta=meta,
                        raw_alpha=raws[b] if (raws is not None and store) else None,
                        error_map=maps[b] if (maps is not None and store) else None,
                        rejected=not accepted, store_images=store, alpha_bits=bits)
                except OSError as error:
                    full = " (disk full?)" if getattr(error, "errno", None) == 28 else ""
                    kept = f" Samples {', '.join(done)} were written completely." if done else ""
                    raise DatasetError(
                        f"cannot write sample {sample_id} to {writer.root}: "
                        f"{error.strerror or error}{full}. Nothing already in the dataset was "
                        f"lost and no partial file is visible.{kept} Free space or fix the "
                        "permissions and queue again: complete ids are skipped.") from error
                if not outcome.written:
                    lines.append(f"{sample_id}: skipped (completed meanwhile by another writer)")
                else:
                    done.append(sample_id)
                    where = "accepted" if accepted else (
                        "rejected, images kept" if store else "rejected, meta only")
                    reasons = ""
                    if not accepted and isinstance(verdicts[b], dict) and verdicts[b].get("reasons"):
                        reasons = f": {', '.join(map(str, verdicts[b]['reasons']))}"
                    lines.append(f"{sample_id}: {where}{reasons}")
            images.extend(self._previews(writer, name, sample_id))
            progress.update()
        written = len(done)
        summary = (f"dataset {name} ({writer.root}): {written} written, {count - written} "
                   "skipped\n" + "\n".join(lines))
        return {"ui": {"images": images, "text": [summary]}, "result": (summary,)}

    @staticmethod
    def _previews(writer, name: str, sample_id: str) -> list[dict]:
        """UI image entries (paths relative to the output folder) for a sample's stored images."""
        status = writer.status(sample_id)
        if status is None:
            return []
        prefix = "rejected/" if status == "rejected" else ""
        entries = []
        for kind in ("fg", "alpha"):
            if (writer.root / f"{prefix}{kind}" / f"{sample_id}.png").is_file():
                entries.append({"filename": f"{sample_id}.png",
                                "subfolder": f"{name}/{prefix}{kind}", "type": "output"})
        return entries


# --------------------------------------------------------------------------------------------
# Composite node
# --------------------------------------------------------------------------------------------

def _resolve_folder(text: str) -> Path:
    from .files import resolve_path

    return resolve_path(text)


class LDPCompositeBackground:
    DESCRIPTION = (
        "Composite portraits over backgrounds: composite = foreground * alpha + background * "
        "(1 - alpha). Backgrounds come from a folder of pictures (each is scaled to cover the "
        "portrait and centre-cropped; image i of the batch uses file number index + i of the "
        "folder in an order shuffled by seed) or, with the folder empty, are generated: "
        "gradient, checker, noise, bokeh, solid, studio or random, deterministic from seed and "
        "index. For training composites and previews; unreadable pictures are skipped and "
        "listed in the report.")
    CATEGORY = CATEGORY
    FUNCTION = "composite"
    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("composite", "background", "report")
    OUTPUT_TOOLTIPS = (
        "Foreground over the background (IMAGE [B,H,W,3]).",
        "The background used for each image, fitted to its size (IMAGE [B,H,W,3]).",
        "One line per image: which file or procedural kind and seed it used, plus any "
        "unreadable files that were skipped.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        from ..refine.composite import KINDS, RANDOM_KIND

        return {
            "required": {
                "foreground": ("IMAGE", {"tooltip": (
                    "Foreground colour (IMAGE [B,H,W,3]); use the padded F so that soft edges "
                    "show no dark fringe.")}),
                "alpha": ("MASK", {"tooltip": _ALPHA_TOOLTIP}),
                "background_folder": ("STRING", {"default": "", "tooltip": (
                    "Folder of background pictures (PNG, JPEG, WebP, BMP, TIFF); relative paths "
                    "are looked up in ComfyUI's input folder. Empty = procedural backgrounds.")}),
                "kind": ([RANDOM_KIND, *KINDS], {"default": RANDOM_KIND, "tooltip": (
                    "Procedural background when the folder is empty: gradient, checker, noise "
                    "(fractal texture), bokeh (soft light discs), solid, studio (lit backdrop "
                    "with vignette), or random (a kind per image from the seed).")}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "tooltip": (
                    "Base seed: shuffles the folder order and drives the procedural backgrounds.")}),
                "index": ("INT", {"default": 0, "min": 0, "max": MAX_INDEX, "tooltip": (
                    "Picks the background: image i of the batch uses number index + i (wire the "
                    "sample index so each sample gets another background).")}),
            },
            "optional": {
                "invert": ("BOOLEAN", {"default": False, "tooltip": _INVERT_TOOLTIP}),
            },
        }

    def composite(self, foreground, alpha, background_folder="", kind="random", seed=0, index=0,
                  invert=False):
        from ..refine.composite import (RANDOM_KIND, background_seed, composite_over,
                                        cover_crop, pick_kind, procedural_background)

        foregrounds, alphas = match_batch(image_list(foreground, "foreground"),
                                          mask_list(alpha, "alpha", invert=invert),
                                          names=("foreground", "alpha"))
        seed, index = int(seed), int(index)
        folder_text = str(background_folder or "").strip()
        files, order = [], []
        if folder_text:
            folder = _resolve_folder(folder_text)
            if not folder.is_dir():
                raise ValueError(f"background_folder {folder} is not a folder (relative paths are "
                                 "looked up in ComfyUI's input folder); clear it for procedural "
                                 "backgrounds.")
            files = list_background_files(folder)
            if not files:
                raise ValueError(f"background_folder {folder} has no pictures "
                                 f"({', '.join(BACKGROUND_SUFFIXES)}); add some or clear the "
                                 "field for procedural backgrounds.")
            order = list(np.random.default_rng(seed % (1 << 63)).permutation(len(files)))

        progress = Progress(len(alphas))
        composites, backgrounds, lines, skipped = [], [], [], {}
        for b, (fg, matte) in enumerate(zip(foregrounds, alphas)):
            check_interrupt()
            height, width = matte.shape
            position = index + b
            if files:
                picture = None
                for attempt in range(len(files)):  # next file when one is unreadable
                    path = files[order[(position + attempt) % len(files)]]
                    if path.name in skipped:
                        continue
                    try:
                        picture = cover_crop(read_background(path), height, width)
                    except (ValueError, OSError) as error:
                        skipped[path.name] = str(error)
                        continue
                    lines.append(f"{b}: {path.name}")
                    break
                if picture is None:
                    raise ValueError(f"none of the {len(files)} picture(s) in {folder} could be "
                                     f"read: {'; '.join(skipped.values())}")
            else:
                image_seed = background_seed(seed % (1 << 63), position)
                drawn = pick_kind(image_seed) if kind == RANDOM_KIND else kind
                picture = procedural_background(drawn, height, width, image_seed)
                lines.append(f"{b}: procedural {drawn} seed {image_seed}")
            backgrounds.append(picture)
            composites.append(composite_over(fg, matte, picture))
            progress.update()
        if skipped:
            lines.append(f"skipped {len(skipped)} unreadable file(s):")
            lines.extend(f"  {reason}" for reason in skipped.values())
        return (image_tensor(composites), image_tensor(backgrounds), "\n".join(lines))


NODE_CLASS_MAPPINGS = {
    "LDPSaveDataset": LDPSaveDataset,
    "LDPCompositeBackground": LDPCompositeBackground,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LDPSaveDataset": "Save Matting Dataset (LD-Portrait)",
    "LDPCompositeBackground": "Composite over Background (LD-Portrait)",
}

__all__ = ["LDPSaveDataset", "LDPCompositeBackground", "output_directory", "parse_json_input",
           "per_image", "decide_keep", "list_background_files", "read_background",
           "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "OUTPUT_DIR_ENV"]
