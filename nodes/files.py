"""File nodes: load RGBA portraits (existing Layer Diffusion outputs) into a graph.

Core's Load Image returns MASK = 1 - alpha and lists only its input folder. This loader reads
one RGBA PNG, or the N-th PNG of a folder (sorted by name), and returns the alpha the way the
rest of the pack uses it: 1 = opaque portrait.
"""
from __future__ import annotations

from pathlib import Path

from ._common import image_tensor, mask_tensor
from ._host import input_directory
from ._schema import Output, choice, comfy_node, node_mappings, text, whole_number

CATEGORY = "LD-Portrait/io"
OUT_OF_RANGE_MODES = ("wrap", "error")


def resolve_path(path: str) -> Path:
    """``path`` as given when absolute; else relative to ComfyUI's input folder (or the
    current folder when the host is absent). Surrounding quotes (pasted paths) are dropped."""
    text = str(path).strip().strip('"').strip("'").strip()
    if not text:
        raise ValueError("path is empty: enter an RGBA PNG file or a folder of PNG files.")
    candidate = Path(text).expanduser()
    if candidate.is_absolute():
        return candidate
    base = input_directory()
    return (base / candidate) if base is not None else candidate.absolute()


def pick_file(path: str, index: int, out_of_range: str = "wrap") -> tuple[Path, int, int]:
    """Resolve ``path`` to one PNG file.

    Returns
    -------
    file : Path
    position : int
        The 0-based position of ``file`` in its folder (0 for a single file).
    count : int
        Number of PNG files in the folder (1 for a single file).
    """
    from ..dataset.imagefiles import list_pngs

    if out_of_range not in OUT_OF_RANGE_MODES:
        raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE_MODES}, got {out_of_range!r}.")
    target = resolve_path(path)
    if target.is_file():
        return target, 0, 1
    if not target.is_dir():
        where = "" if Path(str(path).strip()).is_absolute() else (
            " (relative paths are looked up in ComfyUI's input folder, or the current folder "
            "outside ComfyUI)")
        raise ValueError(f"{target}: no such file or folder{where}.")
    files = list_pngs(target)
    if not files:
        raise ValueError(f"{target}: the folder contains no PNG files.")
    index = int(index)
    if index < 0:
        raise ValueError(f"index must be 0 or more, got {index}.")
    if index >= len(files):
        if out_of_range == "error":
            raise ValueError(
                f"index {index} is out of range: {target} has {len(files)} PNG file(s), "
                f"indices 0..{len(files) - 1}. Set out_of_range to 'wrap' to cycle through them.")
        index %= len(files)
    return files[index], index, len(files)


@comfy_node
class LDPLoadRGBA:
    DISPLAY_NAME = "Load RGBA Portrait (LD-Portrait)"
    DESCRIPTION = (
        "Load an RGBA PNG (for example an existing Layer Diffusion output) or the N-th PNG of "
        "a folder, sorted by name, and split it into colour and alpha. Unlike core Load Image, "
        "the alpha output is 1 = opaque portrait. Relative paths are looked up in ComfyUI's "
        "input folder. Files without an alpha channel are an error that names the file. "
        "Images over 64 megapixels or 512 MiB are refused before decoding (a decompression "
        "bomb would take the whole server down); set LDP_MAX_IMAGE_PIXELS / "
        "LDP_MAX_IMAGE_BYTES in ComfyUI's environment to change the limits.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    OUTPUTS = (
        Output("IMAGE", "image", "Colour (IMAGE [1,H,W,3], RGB in 0..1)."),
        Output("MASK", "alpha", "Alpha, 1 = opaque portrait, 0 = background (MASK [1,H,W]). Not inverted, "
                                "unlike core Load Image."),
        Output("IMAGE", "rgba", "Colour and alpha together (IMAGE [1,H,W,4])."),
        Output("STRING", "filename", "File name without folder (use it to name outputs)."),
        Output("INT", "count", "Number of PNG files in the folder (1 for a single file); loop index "
                               "0..count-1."),
    )

    @classmethod
    def inputs(cls):
        return [
            text("path", "An RGBA PNG file or a folder of them. Absolute, or relative to ComfyUI's "
                         "input folder.", default=""),
            whole_number("index", 0, 0, 0x7FFFFFFF, (
                "Which PNG of the folder to load (0 = first, sorted by name). Ignored for a single "
                "file."), step=1),
            choice("out_of_range", OUT_OF_RANGE_MODES, "wrap", (
                "When index is past the last file: 'wrap' starts again from the first (index "
                "modulo count), 'error' stops with a message."), optional=True),
        ]

    @classmethod
    def IS_CHANGED(cls, path, index, out_of_range="wrap"):
        # Re-run when another file is picked or the picked file is rewritten.
        # Host compatibility (seen on ComfyUI 0.3.64 and 0.8.0 alike): the host calls
        # IS_CHANGED with constant inputs only; a linked input (the refine-a-folder workflow's
        # counter feeding `index`) arrives as None, and int(None) made the host log a bare
        # "WARNING: int() argument must be ..." on every prompt. The link's value is already
        # part of the host's cache key, so fingerprint every PNG the link could pick instead.
        if path is None:
            return float("nan")  # unknown file: always run
        if index is None:
            import hashlib

            from ..dataset.imagefiles import list_pngs

            try:
                target = resolve_path(path)
                digest = hashlib.sha256()
                for file in [target] if target.is_file() else list_pngs(target):
                    stat = file.stat()
                    digest.update(f"{file.name}|{stat.st_mtime_ns}|{stat.st_size}\n".encode())
            except (OSError, ValueError):
                return float("nan")
            return f"{target}|{digest.hexdigest()}"
        try:
            file, _, count = pick_file(path, index, out_of_range)
            stat = file.stat()
        except (OSError, ValueError):
            return float("nan")  # never equal to itself: the host re-runs and reports the error
        return f"{file}|{count}|{stat.st_mtime_ns}|{stat.st_size}"

    def load(self, path, index, out_of_range="wrap"):
        import numpy as np

        from ..dataset.imagefiles import read_rgba

        file, _, count = pick_file(path, index, out_of_range)
        # Header and size are checked before decoding (ImageTooLargeError); every
        # ImageFileError is a ValueError that names the file.
        rgb, alpha = read_rgba(file)
        rgba = np.concatenate([rgb, alpha[..., None]], axis=2)
        return (image_tensor([rgb]), mask_tensor([alpha]), image_tensor([rgba]), file.name, count)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings(LDPLoadRGBA)

__all__ = ["LDPLoadRGBA", "pick_file", "resolve_path", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
